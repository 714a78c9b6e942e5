-- Give rows back after a failed attempt: due again after the given delay on the database's clock
-- (like the lease), with the error, fenced by the lease token. When the attempt's answer was lost,
-- what it may have applied is remembered (merged into maybe_applied) so the next attempt can
-- account for it. The steps Mailchimp acknowledged replace done_steps (null keeps the record);
-- they name the version they were taken for, so a change committed meanwhile makes them void.
-- $1 lease token, $2 ids, $3 delays in seconds, $4 errors, $5 what each attempt may have applied (or null),
-- $6 the steps acknowledged (or null)
update chimpsync.sync_queue q
set lease_owner = null, lease_token = null, lease_expires_at = null,
    next_attempt_at = now() + make_interval(secs => a.delay), last_error = a.error,
    maybe_applied = case
        when a.attempted is null then q.maybe_applied
        else chimpsync.merge_maybe_applied(q.maybe_applied, a.attempted)
    end,
    done_steps = coalesce(a.done, q.done_steps)
from unnest($2::bigint[], $3::float8[], $4::text[], $5::jsonb[], $6::jsonb[]) as a(id, delay, error, attempted, done)
where q.id = a.id and q.lease_token = $1
