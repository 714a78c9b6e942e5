drop event trigger if exists chimpsync_ddl_guard;
drop event trigger if exists chimpsync_drop_guard
