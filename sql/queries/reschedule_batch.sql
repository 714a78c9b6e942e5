-- Give rows back after a failed attempt: retry at the given time with the error, fenced by the
-- lease token. $1 lease token, $2 ids, $3 next attempt times, $4 errors
update chimpsync.sync_queue q
set lease_owner = null, lease_token = null, lease_expires_at = null,
    next_attempt_at = a.next_attempt_at, last_error = a.error
from unnest($2::bigint[], $3::timestamptz[], $4::text[]) as a(id, next_attempt_at, error)
where q.id = a.id and q.lease_token = $1
