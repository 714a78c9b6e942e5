-- Serialises concurrent `chimpsync setup` runs; released at commit or rollback.
select pg_advisory_xact_lock(hashtext('chimpsync.setup'))
