-- The fairness scenario: for each change ($1 accounts, $2 customer keys, $3 when its commit
-- returned, epoch seconds), the seconds until Mailchimp's acknowledgement of it was recorded
-- (synced_at, the acknowledging statement's time); null while it is not acknowledged. Each
-- customer is changed once, and the ack that follows its change is the first one after it.
select extract(epoch from s.synced_at)::float8 - k.at
from unnest($1::text[], $2::text[], $3::float8[]) as k(account, customer_key, at)
left join chimpsync.synced_contacts s
       on s.account = k.account and s.customer_key = k.customer_key and s.synced_at >= to_timestamp(k.at)
