-- One account's Sync Contacts: whether its request is still waiting, and whether it has queue rows.
select a.sync_requested_at is not null as requested,
       exists (select 1 from chimpsync.sync_queue q where q.account = a.account) as queued
from chimpsync.accounts a
where a.account = $1
