-- The naive outbox's acknowledgement: delete the row it holds, then commit. $1 id
delete from chimpsync.sync_queue where id = $1
