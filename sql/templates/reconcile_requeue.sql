-- `chimpsync reconcile --apply`: record what reconcile saw Mailchimp hold for these customers and
-- queue them again with their current state, so the worker sends exactly what differs.
-- $1 customer keys, $2 whether a live member was found, $3 its address, $4 whether it is
-- subscribed or pending, $5 the tags it has that chimpsync manages (JSON arrays), $6 the account
-- ('' with one account)
with fixes as (
    select *
    from unnest($1::text[], $2::boolean[], $3::text[], $4::boolean[], $5::jsonb[])
        as f(k, present, email, consent, tags)
),
forgotten as (
    delete from chimpsync.synced_contacts s
    using fixes f
    where s.account = $6::text and s.customer_key = f.k and not f.present
    returning s.customer_key
),
observed as (
    insert into chimpsync.synced_contacts as s (account, customer_key, email, consent, tags)
    select $6::text, f.k, f.email, f.consent, f.tags from fixes f where f.present
    on conflict ({{conflict}}) do update
        set email = excluded.email, consent = excluded.consent, tags = excluded.tags
    returning s.customer_key
),
chunk as (
    select * from {{table}} c
    where (c.{{key}})::text in (select f.k from fixes f) and ({{account}})::text = $6::text
),
projected as (
    {{projection}}
),
enqueued as (
    {{enqueue}}
    returning q.id
)
select (select count(*) from enqueued)  as enqueued,
       (select count(*) from observed)  as observed,
       (select count(*) from forgotten) as forgotten
