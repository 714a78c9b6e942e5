-- How many of the DDL guard's event triggers exist (2 when it is installed).
select count(*) from pg_catalog.pg_event_trigger
where evtname in ('chimpsync_ddl_guard', 'chimpsync_drop_guard') and evtenabled <> 'D'
