-- `chimpsync reconcile` (full run): every customer that should be in the audience and has no
-- queued change, with what chimpsync synced; read in chunks through a portal. $1 the account
-- ('' with one account)
with chunk as (
    select * from {{table}} c
),
projected as (
    {{projection}}
)
select p.k as customer_key, p.e as email, p.p as payload, p.f as wanted,
       s.email as synced_email, s.consent as synced_consent, s.tags as synced_tags,
       false as queued
from projected p
left join chimpsync.synced_contacts s on s.account = p.a and s.customer_key = p.k
where p.f and p.a = $1::text
  and not exists (select 1 from chimpsync.sync_queue q where q.account = p.a and q.customer_key = p.k)
