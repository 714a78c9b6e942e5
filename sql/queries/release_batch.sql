-- Give rows back untried (shutdown, deadline): due again at once, the claim not counted as an attempt.
-- $1 lease token, $2 ids
update chimpsync.sync_queue q
set lease_owner = null, lease_token = null, lease_expires_at = null,
    next_attempt_at = now(), attempts = greatest(q.attempts - 1, 0)
where q.id = any($2::bigint[]) and q.lease_token = $1
