-- The naive outbox (scenario 6's baseline): take the oldest due row, one at a time, holding its
-- lock for the rest of the transaction.
select id, customer_key, email, payload
from chimpsync.sync_queue
where parked_at is null and next_attempt_at <= now()
order by next_attempt_at
limit 1
for update skip locked
