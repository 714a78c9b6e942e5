-- `chimpsync reconcile`: the customers a page of Mailchimp members belongs to, found by the
-- table's address or by the address chimpsync synced them under, with what chimpsync synced and
-- whether a change of theirs is queued. $1 the members' addresses, lower-cased
with chunk as (
    {{customers_at}}
),
projected as (
    {{projection}}
)
select p.k as customer_key, p.e as email, p.p as payload, p.f as wanted,
       s.email as synced_email, s.consent as synced_consent, s.tags as synced_tags,
       exists (select 1 from chimpsync.sync_queue q where q.account = p.a and q.customer_key = p.k) as queued
from projected p
left join chimpsync.synced_contacts s on s.account = p.a and s.customer_key = p.k
