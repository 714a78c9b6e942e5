-- Scenario 4: one UPDATE of many customers that changes a mapped column (LNAME) of each.
-- $1 a salt that differs per run (so every row really changes), $2 the highest id to update
update public.customers set last_name = 'L' || $1::text || '-' || id where id <= $2
