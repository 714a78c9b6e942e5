-- The due rows of a claim of the one account (replaces {{due}} in claim_batch.sql), oldest first.
    select id
    from chimpsync.sync_queue
    -- Held rows are never due (next_attempt_at = infinity), so no held_at filter: a filter
    -- outside the index's predicate makes the planner sort every due row on a fresh queue.
    where parked_at is null
      and next_attempt_at <= coalesce($5::timestamptz, now())
    order by next_attempt_at
    limit $3
    for update skip locked
