-- With many accounts one claim serves several accounts (its text replaces {{pick}} in
-- claim_batch.sql; the worker splits the rows by account, so no call mixes accounts).
-- queued: a loose scan of the per-account due index, one step per account with queued rows,
-- each giving the account's earliest next_attempt_at (so a not-due account costs one probe).
-- picked: up to $9 of those that may be sent to and have due rows, those waiting longest first,
-- locked so that a concurrent claim picks others. fill: in that order, each account's due rows
-- up to what the batch ($3) has left, so the first accounts take everything they have and the
-- work stays bounded by $3 however many accounts are picked. Each account's rows are read from
-- the per-account due index, the only index on next_attempt_at with many accounts
-- (account_indexes.sql).
queued(account, next_at) as (
    (select q.account, q.next_attempt_at from chimpsync.sync_queue q
     where q.parked_at is null order by q.account, q.next_attempt_at limit 1)
    union all
    select n.account, n.next_at
    from queued r
    cross join lateral (select q.account, q.next_attempt_at as next_at from chimpsync.sync_queue q
                        where q.parked_at is null and q.account > r.account
                        order by q.account, q.next_attempt_at limit 1) n
),
picked as (
    select a.account, a.last_claimed_at
    from chimpsync.accounts a
    join queued r on r.account = a.account
    where r.next_at <= coalesce($5::timestamptz, now())
      and a.enabled and a.state = 'active' and a.audience_id is not null
      and (a.paused_until is null or a.paused_until <= coalesce($5::timestamptz, now()))
    order by a.last_claimed_at, a.account
    limit $9
    for update of a skip locked
),
ranked as (
    select p.account, row_number() over (order by p.last_claimed_at, p.account) as rank
    from picked p
),
fill(rank, ids, taken) as (
    select 0::bigint, '{}'::bigint[], 0::bigint
    union all
    select f.rank + 1, t.ids, f.taken + cardinality(t.ids)
    from fill f
    join ranked p on p.rank = f.rank + 1
    cross join lateral (
        select coalesce(array_agg(d.id), '{}') as ids
        from (select q.id from chimpsync.sync_queue q
              where q.parked_at is null and q.account = p.account
                and q.next_attempt_at <= coalesce($5::timestamptz, now())
              order by q.next_attempt_at
              limit $3 - f.taken) d) t
    where f.taken < $3
),
