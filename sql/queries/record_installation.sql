insert into chimpsync.installation (singleton, source_table, trigger_shape, mapping, trigger_sql, trigger_catalog)
values (true, $1, $2, $3, $4, $5)
on conflict (singleton) do update
    set source_table = excluded.source_table, trigger_shape = excluded.trigger_shape,
        mapping = excluded.mapping, trigger_sql = excluded.trigger_sql,
        trigger_catalog = excluded.trigger_catalog, installed_at = now()
