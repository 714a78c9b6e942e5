(select count(*) from pg_catalog.pg_attribute a
     where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped
       and (a.attname::text || ' ' || a.atttypid::text) = any ({{signature}})) = {{columns}}
