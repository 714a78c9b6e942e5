-- Scenario 5: one customer's change, committed on its own. $1 id, $2 new last name
update public.customers set last_name = $2 where id = $1
