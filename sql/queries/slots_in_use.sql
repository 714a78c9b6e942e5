-- How many connection slots all replicas hold together. $1 key
select count(*) from pg_catalog.pg_locks
where locktype = 'advisory' and classid = $1::integer::oid and objsubid = 2 and granted
