-- How many rows the queue holds.
select count(*) from chimpsync.sync_queue
