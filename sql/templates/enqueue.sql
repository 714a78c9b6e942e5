insert into chimpsync.sync_queue as q (account, customer_key, operation, email, previous_email, payload)
{{changes}}
on conflict ({{conflict}}) do update set
    operation       = excluded.operation,
    email           = excluded.email,
    previous_email  = case when lower(coalesce(q.previous_email, excluded.previous_email)) = lower(excluded.email) then null
                           else coalesce(q.previous_email, excluded.previous_email) end,
    payload         = excluded.payload,
    version         = q.version + 1,
    done_steps      = null,
    changed_at      = now(),
    parked_at       = null,
    last_error      = case when q.parked_at is null then q.last_error end,
    attempts        = case when q.parked_at is null then q.attempts else 0 end,
    next_attempt_at = case when q.parked_at is null and (q.held_at is null or excluded.operation = 'remove')
                           then q.next_attempt_at else now() end,
    -- A held removal stays held while the customer stays removed; the customer back (a restore)
    -- makes the row an upsert, and the hold ends with nothing archived.
    held_at         = case when excluded.operation = 'remove' then q.held_at end,
    held_reason     = case when excluded.operation = 'remove' then q.held_reason end,
    released_at     = case when excluded.operation = 'remove' then q.released_at end
