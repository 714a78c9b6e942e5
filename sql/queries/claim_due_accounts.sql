-- The due rows of a claim of many accounts (replaces {{due}} in claim_batch.sql): those `fill`
-- chose, by primary key, checked again under the lock.
    select q.id
    from chimpsync.sync_queue q
    where q.id = any (array(select i from fill f cross join lateral unnest(f.ids) as i))
      and q.parked_at is null
      and q.next_attempt_at <= coalesce($5::timestamptz, now())
    for update skip locked
