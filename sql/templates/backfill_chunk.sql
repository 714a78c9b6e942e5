-- One chunk of `chimpsync backfill`: the next $2 rows after key $1 (null = from the start), in key
-- order; $3 = one account's customers only (null = all). Customers already pending keep their
-- queued change (do nothing on conflict).
with chunk as (
    select * from {{table}} c
    where ($1::text is null or c.{{key}} > ($1::text)::{{key_type}})
      and ($3::text is null or {{account}} = ($3::text)::{{account_type}})
    order by c.{{key}}
    limit $2
),
projected as (
    {{projection}}
),
enqueued as (
    insert into chimpsync.sync_queue (account, customer_key, operation, email, previous_email, payload)
    select a, k, 'upsert', e, null, p from projected where f
    on conflict ({{conflict}}) do nothing
    returning 1
)
select (select count(*) from chunk)    as scanned,
       (select count(*) from enqueued) as enqueued,
       (select (c.{{key}})::text from chunk c order by c.{{key}} desc limit 1) as last_key
