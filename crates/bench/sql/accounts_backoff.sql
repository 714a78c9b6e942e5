-- The idle scenario: the queue rows of accounts named $1% wait a day (as after a failed attempt).
update chimpsync.sync_queue set next_attempt_at = now() + interval '1 day' where account like $1 || '%'
