-- How many connection slots all replicas hold together. $1 key
-- Advisory locks belong to a database: count this database's only (another chimpsync, or another
-- test, on the same server holds slots of its own).
select count(*) from pg_catalog.pg_locks
where locktype = 'advisory' and classid = $1::integer::oid and objsubid = 2 and granted
  and database = (select oid from pg_catalog.pg_database where datname = pg_catalog.current_database())
