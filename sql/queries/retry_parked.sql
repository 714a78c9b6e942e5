-- Put parked rows back in line: all of them ($1 = true) or the listed ids ($2).
update chimpsync.sync_queue
set parked_at = null, attempts = 0, next_attempt_at = now()
where parked_at is not null and ($1::boolean or id = any($2::bigint[]))
returning id
