select exists (select 1 from pg_catalog.pg_namespace where nspname = 'chimpsync')
   and to_regclass('chimpsync.schema_migrations') is not null
