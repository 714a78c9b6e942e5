-- Each account at a glance, for `chimpsync account list`: never the key, only its last 4.
select account, state, state_reason, enabled, audience_id, api_key_last4,
       pending, in_flight, retrying, parked, held, last_synced_at, paused_until, sync_requested_at
from chimpsync.account_summary
order by account
