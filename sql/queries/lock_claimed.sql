-- Locks the rows of a claim before acknowledging them, so the acknowledgement's statement sees
-- their latest committed version (a change committed meanwhile by the trigger decides between
-- delete and release). $1 lease token, $2 ids
select id from chimpsync.sync_queue
where id = any($2::bigint[]) and lease_token = $1
order by id
for update
