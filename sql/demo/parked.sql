-- The parked queue rows and why each was parked.
select id, customer_key, last_error from chimpsync.sync_queue where parked_at is not null
