-- Record how applying an event went. $1 id, $2 status (applied | failed | ignored),
-- $3 next attempt (failed only; null = given up), $4 rows the [inbound] statement changed, $5 error
update chimpsync.inbound_events
set status          = $2,
    attempts        = attempts + 1,
    applied_at      = case when $2 in ('applied', 'ignored') then now() end,
    next_attempt_at = $3,
    rows_affected   = $4,
    last_error      = $5
where id = $1
