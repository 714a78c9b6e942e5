-- Lock one event that still has to be applied; nothing when it is done, ignored, or being applied
-- by another replica right now. $1 event id
select id, event_type, email, new_email, payload, attempts, account
from chimpsync.inbound_events
where id = $1 and status in ('received', 'failed')
for update skip locked
