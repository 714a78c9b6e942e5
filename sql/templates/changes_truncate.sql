-- After a TRUNCATE of the customer table: every customer Mailchimp may hold is removed. That is
-- each synced customer (its member's address is in synced_contacts), and each customer never
-- synced whose queued upsert may have reached Mailchimp (in flight, or an attempt's answer was
-- lost); the queued upserts of the others were deleted just before.
select s.account, s.customer_key, 'remove', s.email, null::text, '{}'::jsonb
from chimpsync.synced_contacts s
union all
select q.account, q.customer_key, 'remove', q.email, null::text, q.payload
from chimpsync.sync_queue q
where q.operation = 'upsert'
  and not exists (select 1 from chimpsync.synced_contacts s where s.account = q.account and s.customer_key = q.customer_key)
