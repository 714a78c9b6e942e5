-- With many accounts the claim first picks one account (its text replaces {{pick}} in
-- claim_batch.sql): of the accounts with queued rows (a loose scan of the per-account due index,
-- one probe per account), one that may be sent to and has due rows, the one that waited longest.
queued(account) as (
    (select q.account from chimpsync.sync_queue q where q.parked_at is null order by q.account limit 1)
    union all
    select (select q.account from chimpsync.sync_queue q
            where q.parked_at is null and q.account > r.account order by q.account limit 1)
    from queued r
    where r.account is not null
),
pick as (
    select a.account
    from chimpsync.accounts a
    where a.account in (select r.account from queued r where r.account is not null)
      and a.enabled and a.state = 'active' and a.audience_id is not null
      and (a.paused_until is null or a.paused_until <= coalesce($5::timestamptz, now()))
      and exists (select 1 from chimpsync.sync_queue q
                  where q.account = a.account and q.parked_at is null
                    and q.next_attempt_at <= coalesce($5::timestamptz, now()))
    order by a.last_claimed_at, a.account
    limit 1
),
picked as (
    update chimpsync.accounts a set last_claimed_at = clock_timestamp()
    from pick p where a.account = p.account
    returning a.account
),
