-- With many accounts one claim serves several accounts (its text replaces {{pick}} in
-- claim_batch.sql; the worker splits the rows by account, so no call mixes accounts).
-- Which accounts: up to $9 of those that may be sent to and have due rows, those waiting longest
-- first. Two ways to find them, the cheaper one first:
-- walk: the 2 x $9 accounts waiting longest, one probe each for a due row. When that finds $9,
--   they are the answer (no older account was skipped): the case of many accounts each with
--   rows, as in a first sync of many. Otherwise, queued: a loose scan of the per-account due
--   index, one step per account with queued rows, giving each one's earliest next_attempt_at;
--   cheap when few accounts have rows, whatever the number of accounts (the scan only runs when
--   the walk fell short).
-- picked: the candidates, locked so that a concurrent claim picks others. fill: in that order,
-- each account's due rows up to what the batch ($3) has left, so the first accounts take
-- everything they have and the work stays bounded by $3 however many accounts are picked. Each
-- account's rows are read from the per-account due index, the only index on next_attempt_at
-- with many accounts (account_indexes.sql).
walk as (
    select a.account
    from (select a.account from chimpsync.accounts a
          where a.enabled and a.state = 'active' and a.audience_id is not null
            and (a.paused_until is null or a.paused_until <= coalesce($5::timestamptz, now()))
          order by a.last_claimed_at, a.account
          limit 2 * $9::bigint) a
    where exists (select 1 from chimpsync.sync_queue q
                  where q.account = a.account and q.parked_at is null
                    and q.next_attempt_at <= coalesce($5::timestamptz, now()))
),
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
candidates as (
    select w.account from walk w where (select count(*) from walk) >= $9::bigint
    union all
    select r.account from queued r
    where (select count(*) from walk) < $9::bigint and r.next_at <= coalesce($5::timestamptz, now())
),
picked as (
    select a.account, a.last_claimed_at
    from chimpsync.accounts a
    where a.account in (select c.account from candidates c)
      and a.enabled and a.state = 'active' and a.audience_id is not null
      and (a.paused_until is null or a.paused_until <= coalesce($5::timestamptz, now()))
    order by a.last_claimed_at, a.account
    limit $9::bigint
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
