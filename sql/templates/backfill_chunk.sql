-- One chunk of `chimpsync backfill`: the next $2 rows after key $1 (null = from the start), in key
-- order. Customers already pending keep their queued change (do nothing on conflict).
with chunk as (
    select * from {{table}} c
    where $1::text is null or c.{{key}} > ($1::text)::{{key_type}}
    order by c.{{key}}
    limit $2
),
projected as (
    {{projection}}
),
enqueued as (
    insert into chimpsync.sync_queue (customer_key, operation, email, previous_email, payload)
    select k, 'upsert', e, null, p from projected where f
    on conflict (customer_key) do nothing
    returning 1
)
select (select count(*) from chunk)    as scanned,
       (select count(*) from enqueued) as enqueued,
       (select (c.{{key}})::text from chunk c order by c.{{key}} desc limit 1) as last_key
