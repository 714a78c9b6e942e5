-- The fairness scenario's observer: which customers of the accounts $1 still have a queue row.
select customer_key from chimpsync.sync_queue where account = any($1::text[])
