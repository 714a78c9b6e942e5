-- The columns of a table, to check a mapping against: name, SQL type, type oid and the type's
-- category (pg_type.typcategory). $1 schema, $2 table
select a.attname::text, format_type(a.atttypid, a.atttypmod), a.atttypid, t.typcategory::text
from pg_catalog.pg_attribute a
join pg_catalog.pg_class c on c.oid = a.attrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_type t on t.oid = a.atttypid
where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped
order by a.attnum
