-- Claim up to $3 due rows for one batch. The lease is written into next_attempt_at as well, so a
-- lapsed lease makes the row due again through this same query (no rescuer needed).
-- $1 owner, $2 lease token, $3 limit, $4 lease seconds, $5 now (null = the database clock)
with due as (
    select id
    from chimpsync.sync_queue
    where parked_at is null
      and next_attempt_at <= coalesce($5::timestamptz, now())
    order by next_attempt_at
    limit $3
    for update skip locked
),
claimed as (
    update chimpsync.sync_queue q
    set lease_owner      = $1,
        lease_token      = $2,
        lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => $4),
        next_attempt_at  = coalesce($5::timestamptz, now()) + make_interval(secs => $4),
        attempts         = q.attempts + 1
    from due
    where q.id = due.id
    returning q.id, q.customer_key, q.operation, q.email, q.previous_email, q.payload, q.version, q.attempts, q.maybe_applied
)
select c.id, c.customer_key, c.operation, c.email, c.previous_email, c.payload, c.version, c.attempts, c.maybe_applied,
       s.email   as synced_email,
       s.consent as synced_consent,
       s.tags    as synced_tags,
       (select o.customer_key
          from chimpsync.synced_contacts o
         where lower(o.email) = lower(c.email) and o.customer_key <> c.customer_key
         limit 1) as address_owner
from claimed c
left join chimpsync.synced_contacts s on s.customer_key = c.customer_key
order by c.id
