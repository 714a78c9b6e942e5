-- After an inbound event ran its [inbound] statement on {{table}} (with chimpsync.origin =
-- 'mailchimp', so the triggers stayed silent): bring chimpsync's own records of the customers at
-- the event's addresses in line with the table.
-- $1 the addresses (lower-cased), $2 the consent Mailchimp now holds (true: subscribed, false:
-- unsubscribed or cleaned, null: the event says nothing about it)
with chunk as (
    {{customers_at}}
),
projected as (
    {{projection}}
),
-- Once the table agrees with Mailchimp, that consent counts as sent: the next outbound change
-- of the customer does not set the member's status again.
agreed as (
    update chimpsync.synced_contacts s
    set consent = $2::boolean
    from projected p
    where $2::boolean is not null
      and s.account = p.a and s.customer_key = p.k
      and (p.p ->> 'consent')::boolean = $2::boolean
      and s.consent <> $2::boolean
    returning s.customer_key
),
-- A change queued before the event carries a snapshot that is now stale: refresh it from the
-- table (a row in flight is then re-sent, like any row that changes while in flight).
refreshed as (
    update chimpsync.sync_queue q
    set operation  = case when p.f then 'upsert' else 'remove' end,
        email      = case when p.f then p.e else q.email end,
        payload    = case when p.f then p.p else q.payload end,
        version    = q.version + 1,
        changed_at = now()
    from projected p
    where q.account = p.a and q.customer_key = p.k
      and (q.operation <> case when p.f then 'upsert' else 'remove' end
           or (p.f and (q.email is distinct from p.e or q.payload is distinct from p.p)))
    returning q.id
)
select (select count(*) from agreed)    as agreed,
       (select count(*) from refreshed) as refreshed
