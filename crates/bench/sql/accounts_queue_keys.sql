-- The fairness scenario's observer: which of the changed customers ($1 accounts, $2 keys, the
-- changes not yet seen acknowledged) still have a queue row. One index probe each: reading the
-- live accounts' whole queue every 10 ms would cost a core once the queue is large.
select q.customer_key
from unnest($1::text[], $2::text[]) as k(account, customer_key)
join chimpsync.sync_queue q on q.account = k.account and q.customer_key = k.customer_key
