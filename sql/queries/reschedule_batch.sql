-- Give rows back after a failed attempt: retry at the given time with the error, fenced by the
-- lease token. When the attempt's answer was lost, what it may have applied is remembered
-- (merged into maybe_applied) so the next attempt can account for it.
-- $1 lease token, $2 ids, $3 next attempt times, $4 errors, $5 what each attempt may have applied (or null)
update chimpsync.sync_queue q
set lease_owner = null, lease_token = null, lease_expires_at = null,
    next_attempt_at = a.next_attempt_at, last_error = a.error,
    maybe_applied = case
        when a.attempted is null then q.maybe_applied
        else jsonb_build_object(
            'emails', (select coalesce(jsonb_agg(distinct x), '[]'::jsonb)
                       from jsonb_array_elements_text(coalesce(q.maybe_applied -> 'emails', '[]'::jsonb)
                                                      || coalesce(a.attempted -> 'emails', '[]'::jsonb)) as x),
            'tags', (select coalesce(jsonb_agg(distinct x), '[]'::jsonb)
                     from jsonb_array_elements_text(coalesce(q.maybe_applied -> 'tags', '[]'::jsonb)
                                                    || coalesce(a.attempted -> 'tags', '[]'::jsonb)) as x),
            'consents', (select coalesce(jsonb_agg(distinct x), '[]'::jsonb)
                         from jsonb_array_elements(coalesce(q.maybe_applied -> 'consents', '[]'::jsonb)
                                                   || coalesce(a.attempted -> 'consents', '[]'::jsonb)) as x))
    end
from unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::jsonb[]) as a(id, next_attempt_at, error, attempted)
where q.id = a.id and q.lease_token = $1
