-- The DDL guard (chimpsync.ddl_guard): needs a superuser on PostgreSQL 15.
drop event trigger if exists chimpsync_ddl_guard;
drop event trigger if exists chimpsync_drop_guard;
create event trigger chimpsync_ddl_guard on ddl_command_end
    when tag in ('ALTER TABLE')
    execute function chimpsync.ddl_guard();
create event trigger chimpsync_drop_guard on sql_drop execute function chimpsync.ddl_guard()
