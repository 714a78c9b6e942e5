-- A hash of chimpsync's triggers on table $2 of schema $1 and of their functions, as the catalog
-- describes them (null when there are none). Reads the catalog only: no lock on the table.
select encode(sha256(convert_to(string_agg(
           pg_catalog.pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text || E'\n'
               || pg_catalog.pg_get_functiondef(t.tgfoid),
           E'\n' order by t.tgname), 'UTF8')), 'hex')
from pg_catalog.pg_trigger t
join pg_catalog.pg_class c on c.oid = t.tgrelid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1 and c.relname = $2 and not t.tgisinternal and t.tgname like 'chimpsync\_%'
