select pending, in_flight, retrying, parked, oldest_pending_seconds, last_synced_at, held, held_reason
from chimpsync.queue_summary
