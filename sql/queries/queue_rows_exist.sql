-- Which of the listed queue row ids ($1) exist (to tell a missing row from one not parked).
select id from chimpsync.sync_queue where id = any($1::bigint[])
