-- Claim up to $3 due rows for one batch, after holding mass removals; see Queue::claim_guarded
-- for why each part is there (this text stays short: pg_stat_activity shows the first 1 KiB).
-- $1 owner, $2 lease token, $3 limit, $4 lease seconds, $5 now (null = the database clock),
-- $6 share of the synced contacts (null = no guard), $7 removals always allowed, $8 window seconds;
-- many accounts: $9 accounts at most per claim
{{with}}{{pick}}counted as (
    -- The removals of synced contacts queued within the window (normally none: the partial
    -- index holds only unheld, unreleased removals). A removal of a customer never synced does
    -- not shrink the synced audience and is not counted.
    select q.id, q.account
    from chimpsync.sync_queue q
    where $6::float8 is not null
      and q.operation = 'remove' and q.held_at is null and q.parked_at is null and q.released_at is null
      and q.changed_at > coalesce($5::timestamptz, now()) - make_interval(secs => $8::float8)
      and exists (select 1 from chimpsync.synced_contacts s where s.account = q.account and s.customer_key = q.customer_key){{q_in_account}}
),
guard as (
    select r.account, r.n, s.synced, r.n > $7::bigint and r.n > $6::float8 * s.synced as trips
    from (select c.account, count(*) as n from counted c group by c.account) r
    -- the synced contacts are counted only when the removals pass the floor
    cross join lateral (select count(*) as synced from chimpsync.synced_contacts s
                        where r.n > $7::bigint and s.account = r.account) s
),
held as (
    update chimpsync.sync_queue q
    set held_at = now(),
        next_attempt_at = 'infinity',
        held_reason = format(
            'held: %s removals queued within %s = %s of %s synced contacts (limit %s %%, at least %s rows); '
            'a person must look, then run `chimpsync release-removals` (a restore of the customers cancels the hold)',
            to_char(g.n, 'FM999,999,999,990'),
            case when $8::float8 >= 3600 and $8::numeric % 3600 = 0 then ($8::numeric / 3600)::bigint || ' h'
                 when $8::float8 >= 60 and $8::numeric % 60 = 0 then ($8::numeric / 60)::bigint || ' min'
                 else rtrim(rtrim(round($8::numeric, 1)::text, '0'), '.') || ' s' end,
            round(100.0 * g.n / g.synced)::text || ' %',
            to_char(g.synced, 'FM999,999,999,990'),
            rtrim(rtrim(round(($6::float8 * 100)::numeric, 2)::text, '0'), '.'),
            $7::bigint)
    from guard g
    where g.trips and q.account = g.account
      and q.id in (
          -- those in flight finish their claim; a row locked by a customer's transaction is held
          -- by a later claim
          select id
          from chimpsync.sync_queue
          where id in (select id from counted)
            and (lease_expires_at is null or lease_expires_at <= coalesce($5::timestamptz, now()))
          for update skip locked)
    returning q.id
),
due as (
{{due}}
),
claimed as (
    update chimpsync.sync_queue q
    set lease_owner      = $1,
        lease_token      = $2,
        lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => $4),
        next_attempt_at  = coalesce($5::timestamptz, now()) + make_interval(secs => $4),
        attempts         = q.attempts + 1,
        maybe_applied    = case
            -- The common case: the last claim of this row ended normally (or there was none):
            -- nothing to merge (no aggregation on the path every row of an initial sync takes).
            when q.lease_token is null then coalesce(q.maybe_applied, '{}'::jsonb) - 'in_flight'
            -- What the lost claim was sending, as emails, tags and consents (an in_flight
            -- already in that form is taken as it is).
            else chimpsync.merge_maybe_applied(q.maybe_applied, (
                select case when sent ? 'payload' then jsonb_build_object(
                           'emails', jsonb_build_array(sent ->> 'email'),
                           'tags', (select coalesce(jsonb_agg(distinct t), '[]'::jsonb)
                                    from (select case jsonb_typeof(v) when 'string' then btrim(v #>> '{}') else v::text end as t
                                          from jsonb_each(coalesce(sent -> 'payload' -> 'tags', '{}'::jsonb)) as e(k, v)
                                          where jsonb_typeof(v) <> 'null') as tags
                                    where t <> ''),
                           'consents', jsonb_build_array(coalesce((sent -> 'payload' ->> 'consent')::boolean, false)))
                       else sent end
                from (select q.maybe_applied -> 'in_flight' as sent) as s))
        end
        -- what this claim is about to send: an upsert's address and payload
        || jsonb_build_object('in_flight',
            case when q.operation = 'upsert' and nullif(btrim(q.email), '') is not null
                then jsonb_build_object('email', btrim(q.email), 'payload', q.payload) end)
    from due
    -- what `held` holds in this statement is not claimed (its update is not visible to `due`)
    where q.id = due.id and not exists (select 1 from held h where h.id = due.id)
    returning q.id, q.account, q.customer_key, q.operation, q.email, q.previous_email, q.payload, q.version, q.attempts,
              q.maybe_applied - 'in_flight' as maybe_applied,
              q.done_steps
){{touch}}
select c.id, c.account, c.customer_key, c.operation, c.email, c.previous_email, c.payload, c.version, c.attempts, c.maybe_applied,
       c.done_steps,
       s.email   as synced_email,
       s.consent as synced_consent,
       s.tags    as synced_tags,
       -- synced_contacts holds addresses as sent (trimmed); the row holds the column's value.
       (select o.customer_key
          from chimpsync.synced_contacts o
         where o.account = c.account and lower(o.email) = lower(btrim(c.email)) and o.customer_key <> c.customer_key
         limit 1) as address_owner
from claimed c
left join chimpsync.synced_contacts s on s.account = c.account and s.customer_key = c.customer_key
order by c.id
