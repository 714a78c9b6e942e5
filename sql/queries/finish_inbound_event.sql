-- Record how applying an event went. $1 id, $2 status (applied | failed | ignored),
-- $3 seconds until the next attempt, on the database's clock (failed only; null = given up),
-- $4 rows the [inbound] statement changed, $5 error. Returns the next attempt's time.
update chimpsync.inbound_events
set status          = $2,
    attempts        = attempts + 1,
    applied_at      = case when $2 in ('applied', 'ignored') then now() end,
    next_attempt_at = now() + make_interval(secs => $3::float8),
    rows_affected   = $4,
    last_error      = $5
where id = $1
returning next_attempt_at
