-- Events whose (next) attempt is due, oldest first. $1 limit, $2 now (null = the database clock)
select id
from chimpsync.inbound_events
where status in ('received', 'failed')
  and next_attempt_at is not null
  and next_attempt_at <= coalesce($2::timestamptz, now())
order by next_attempt_at
limit $1
