-- Scenario 5's observer: which customers still have a queue row (not yet acknowledged).
select customer_key from chimpsync.sync_queue
