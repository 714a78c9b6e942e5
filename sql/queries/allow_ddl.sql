-- setup changes the source table's triggers: its own DDL passes the DDL guard.
set local chimpsync.allow_ddl = on
