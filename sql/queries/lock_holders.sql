-- The sessions holding locks on table $2 of schema $1 (with $2 null: on any table of $1), oldest
-- transaction first, to say what `setup` waited for. No query text: it may quote customers' data.
select l.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       coalesce(extract(epoch from now() - a.xact_start), 0)::float8,
       string_agg(distinct l.mode, ', ')
from pg_catalog.pg_locks l
join pg_catalog.pg_class c on c.oid = l.relation
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
left join pg_catalog.pg_stat_activity a on a.pid = l.pid
where l.granted and l.pid <> pg_catalog.pg_backend_pid()
  and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
  and n.nspname = $1 and ($2::text is null or c.relname = $2)
group by l.pid, a.application_name, a.state, a.xact_start
order by a.xact_start nulls last
limit 3
