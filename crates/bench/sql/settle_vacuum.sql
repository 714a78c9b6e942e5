-- After filling the customer table: vacuumed (visibility map, hint bits, frozen), as a table in use is.
vacuum (freeze, analyze) public.customers
