insert into chimpsync.installation (singleton, source_table, trigger_shape, mapping)
values (true, $1, $2, $3)
on conflict (singleton) do update
    set source_table = excluded.source_table, trigger_shape = excluded.trigger_shape,
        mapping = excluded.mapping, installed_at = now()
