-- Park rows that failed permanently, with the reason. If the customer changed since the claim, the
-- new state deserves its own attempt: the row is released instead of parked.
-- $1 lease token, $2 ids, $3 versions claimed, $4 reasons
update chimpsync.sync_queue q
set lease_owner = null, lease_token = null, lease_expires_at = null,
    parked_at       = case when q.version = a.version then now() end,
    next_attempt_at = now(),
    attempts        = case when q.version = a.version then q.attempts else 0 end,
    last_error      = a.reason
from unnest($2::bigint[], $3::bigint[], $4::text[]) as a(id, version, reason)
where q.id = a.id and q.lease_token = $1
