select version from chimpsync.schema_migrations order by version
