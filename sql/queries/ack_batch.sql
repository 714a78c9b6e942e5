-- Acknowledge rows Mailchimp confirmed, fenced by the claim's lease token. A row whose version is
-- unchanged since the claim is deleted; a row that changed meanwhile stays queued, released for the
-- next claim. In both cases the record of what Mailchimp now holds is updated.
-- One statement: a change committed meanwhile is released, not lost (see Queue::ack).
-- $1 lease token, $2 ids, $3 versions claimed, $4 customer keys, $5 emails sent, $6 consent sent,
-- $7 tags sent (json arrays), $8 removed (true = the member was removed from the audience)
with acked as (
    select *
    from unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::boolean[], $7::jsonb[], $8::boolean[])
        as a(id, version, customer_key, email, consent, tags, removed)
),
deleted as (
    delete from chimpsync.sync_queue q
    using acked a
    where q.id = a.id and q.lease_token = $1 and q.version = a.version
    returning q.id, q.account
),
released as (
    update chimpsync.sync_queue q
    set lease_owner = null, lease_token = null, lease_expires_at = null,
        next_attempt_at = now(), attempts = 0, last_error = null, maybe_applied = null, done_steps = null,
        previous_email = case when a.removed then null else a.email end
    from acked a
    -- only rows the delete left (usually none): no second probe of each acknowledged row
    where a.id not in (select id from deleted)
      and q.id = a.id and q.lease_token = $1
    returning q.id, q.account
),
held as (
    select a.*, d.account from acked a join (select id, account from deleted union all select id, account from released) d using (id)
),
forgotten as (
    delete from chimpsync.synced_contacts s
    using held h
    where s.account = h.account and s.customer_key = h.customer_key and h.removed
    returning s.customer_key
),
remembered as (
    insert into chimpsync.synced_contacts as s (account, customer_key, email, consent, tags, synced_at)
    select h.account, h.customer_key, h.email, h.consent, h.tags, now() from held h where not h.removed
    on conflict ({{conflict}}) do update
        set email = excluded.email, consent = excluded.consent, tags = excluded.tags, synced_at = excluded.synced_at
    returning s.customer_key
),
last_sync as (
    -- the account's "Last Sync" (no row with one account)
    update chimpsync.accounts a set last_synced_at = now()
    where a.account = (select h.account from held h limit 1)
    returning 1
)
select (select count(*) from deleted)    as deleted,
       (select count(*) from released)   as released,
       (select count(*) from forgotten)  as forgotten,
       (select count(*) from remembered) as remembered
