-- Scenario 3 (pgbench custom script): a single-row update of a mapped column (LNAME).
\set id random(1, {{rows}})
\set v random(1, 1000000000)
update public.customers set last_name = 'L' || :v where id = :id;
