-- Takes one free Mailchimp connection slot for this connection, or none. Slots are session advisory
-- locks (key $3, slot number), so a replica that dies gives its slots back with its connection.
-- $1 cap (slots 0..cap-1), $2 slots this connection already holds.
-- Session advisory locks are re-entrant, so a slot this connection holds must never be locked again
-- (it would then need two unlocks). The CASE fixes the evaluation order: Postgres may otherwise
-- evaluate the lock before the exclusion.
select s::integer
from generate_series(0, $1::integer - 1) as s
where case when s = any($2::integer[]) then false else pg_try_advisory_lock($3::integer, s) end
limit 1
