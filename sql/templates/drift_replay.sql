-- `setup`, once the mapping fits the table again: every customer whose changes the capture guard
-- held (chimpsync.drifted_changes) is queued again with its current state; one no longer in the
-- table that Mailchimp knows (or that has a row queued) is queued for removal. The held rows read
-- here are deleted in the same statement; rows held by a transaction that commits later stay for
-- the next setup. Runs before setup records the new mapping: chimpsync.installation still holds
-- the one the rows were held under.
with held as (
    delete from chimpsync.drifted_changes returning row_data
),
keys as (
    -- The key as the triggers write it: the stored value read back as the column's type, then
    -- as text; the new mapping's key column first, the old one's if the key column was renamed.
    -- A row held while the key column was missing is found by its address among the synced.
    select distinct coalesce(h.k, s.customer_key) as k
    from (
        select (jsonb_populate_record(null::{{table}}, jsonb_build_object({{key_literal}},
                   coalesce(h.row_data -> {{key_literal}}, h.row_data -> i.old_key)))).{{key}}::text as k,
               coalesce(h.row_data ->> {{email_literal}}, h.row_data ->> i.old_email) as e
        from held h
        left join (select mapping #>> '{source,key}' as old_key, mapping #>> '{source,email}' as old_email
                   from chimpsync.installation) i on true
    ) h
    left join chimpsync.synced_contacts s on h.k is null and lower(s.email) = lower(btrim(h.e))
),
chunk as (
    select * from {{table}} c where (c.{{key}})::text in (select k.k from keys k)
),
projected as (
    {{projection}}
),
gone as (
    -- in every account that has the customer queued or synced, unless it is there still
    select x.account as a, k.k, coalesce(w.email, s.email) as e, coalesce(w.payload, '{}'::jsonb) as p
    from keys k
    cross join lateral (
        select q.account from chimpsync.sync_queue q where q.customer_key = k.k
        union
        select c.account from chimpsync.synced_contacts c where c.customer_key = k.k
    ) x
    left join chimpsync.sync_queue w on w.account = x.account and w.customer_key = k.k
    left join chimpsync.synced_contacts s on s.account = x.account and s.customer_key = k.k
    where k.k is not null
      and not exists (select 1 from projected p where p.k = k.k and p.a = x.account)
      and coalesce(w.email, s.email) is not null
),
enqueued as (
    {{enqueue}}
    returning q.id
)
select (select count(*) from enqueued) as enqueued, (select count(*) from held) as held
