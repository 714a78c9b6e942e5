-- Takes one free Mailchimp connection slot for this session, or none. Slots are session advisory
-- locks (key $3, slot number), so a replica that dies gives its slots back with its connection.
-- $1 cap (slots 0..cap-1), $2 slots this session already holds (locks are re-entrant per session)
select s::integer
from generate_series(0, $1::integer - 1) as s
where not (s = any($2::integer[]))
  and pg_try_advisory_lock($3::integer, s)
limit 1
