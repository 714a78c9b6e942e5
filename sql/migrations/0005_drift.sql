-- chimpsync 0005: schema changes of the customer table never make the application's writes fail.
--
-- The change triggers check, once per statement, that the table still has every column the
-- mapping reads, of a fitting type (chimpsync.mapping_drift). When it has not, they hold the
-- statement's rows in chimpsync.drifted_changes instead of queueing them (the queueing statement
-- would fail, and with it the application's write); `setup`, once the mapping fits again, queues
-- the customers held and empties the table. Where event triggers may be created, the DDL guard
-- (chimpsync.ddl_guard) refuses such a schema change at DDL time instead.

alter table chimpsync.installation
    add column source_oid       oid,
    add column expected_columns jsonb;

comment on column chimpsync.installation.source_oid is 'The oid of the source table when setup ran: a rename or a move keeps it, a drop loses it.';
comment on column chimpsync.installation.expected_columns is 'The columns the mapping reads, as setup found them: [{key, column, type, type_name, category}], the mapping key first.';

create table chimpsync.drifted_changes (
    id          bigint generated always as identity primary key,
    operation   text        not null,
    side        text        not null check (side in ('old', 'new')),
    row_data    jsonb       not null,
    problem     text        not null,
    recorded_at timestamptz not null default now()
);

comment on table chimpsync.drifted_changes is
    'Rows the application changed while the customer table no longer fitted the mapping, whole, as the change triggers saw them. '
    'Insert-only (no row that concurrent application transactions would contend for); `setup` queues their customers again and deletes them.';
comment on column chimpsync.drifted_changes.side is 'old: the row before an UPDATE or DELETE; new: after an INSERT or UPDATE.';
comment on column chimpsync.drifted_changes.problem is 'What no longer matched, per mapping key, as chimpsync.mapping_drift said.';

-- What no longer matches between the table with oid `relid` and the columns setup recorded
-- (`expected`, see chimpsync.installation.expected_columns), one phrase per mapping key, or null
-- when everything matches. A type may change within the string or the numeric category (text to
-- varchar(20), integer to bigint): the generated statements read such columns the same way. With
-- `installed_name` (the table's quoted name at setup) a rename or a move is drift too. PL/pgSQL so
-- that its plan is cached per session: the change triggers call it once per statement.
create function chimpsync.mapping_drift(relid oid, expected jsonb, installed_name text default null)
returns text
language plpgsql stable set search_path = pg_catalog, pg_temp as $chimpsync$
declare
    current_name text;
    problem text;
begin
    if installed_name is not null then
        -- Quoted as setup records it (always, unlike quote_ident).
        select '"' || replace(n.nspname, '"', '""') || '"."' || replace(c.relname, '"', '""') || '"'
        into current_name
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.oid = relid;
        if current_name is null then
            return format('source.table: table %s was dropped', installed_name);
        elsif current_name <> installed_name then
            return format('source.table: table %s was renamed or moved to %s', installed_name, current_name);
        end if;
    end if;
    select string_agg(
               case when a.attname is null
                    then format('%s: column %s of %s is missing', e.key, quote_ident(e."column"), relid::regclass)
                    else format('%s: column %s of %s is %s, was %s', e.key, quote_ident(e."column"),
                                relid::regclass, format_type(a.atttypid, a.atttypmod), e.type_name)
               end, '; ' order by e.n)
    into problem
    from rows from (jsonb_to_recordset(expected)
                        as (key text, "column" text, type oid, type_name text, category text))
         with ordinality as e(key, "column", type, type_name, category, n)
    left join pg_attribute a
           on a.attrelid = relid and a.attname = e."column" and a.attnum > 0 and not a.attisdropped
    left join pg_type t on t.oid = a.atttypid
    where a.attname is null
       or not (a.atttypid = e.type or (t.typcategory::text = e.category and e.category in ('S', 'N')));
    return problem;
end
$chimpsync$;

-- The DDL guard's function, run by the event triggers `setup` creates where it may: refuses a
-- schema change of the source table that leaves the mapping unmatched, unless the transaction
-- set chimpsync.allow_ddl = on (the change triggers then hold the changes until setup is re-run).
create function chimpsync.ddl_guard() returns event_trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $chimpsync$
declare
    installed record;
    touched boolean;
    problem text;
begin
    if current_setting('chimpsync.allow_ddl', true) = 'on' then
        return;
    end if;
    select source_table, source_oid, expected_columns into installed from chimpsync.installation;
    if installed.source_oid is null then
        return;
    end if;
    if tg_event = 'sql_drop' then
        select exists (select 1 from pg_event_trigger_dropped_objects() o
                       where o.classid = 'pg_class'::regclass and o.objid = installed.source_oid
                         and o.objsubid = 0)
        into touched;
        if touched then
            problem := format('source.table: table %s would be dropped', installed.source_table);
        end if;
    else
        select exists (select 1 from pg_event_trigger_ddl_commands() c
                       where c.classid = 'pg_class'::regclass and c.objid = installed.source_oid)
        into touched;
        if touched then
            problem := chimpsync.mapping_drift(installed.source_oid, installed.expected_columns,
                                               installed.source_table);
        end if;
    end if;
    if problem is not null then
        raise exception 'chimpsync: this change breaks the mapping (%); edit the mapping file to match and run chimpsync setup, or set chimpsync.allow_ddl = on in this transaction to let it through (chimpsync then holds the table''s changes until setup is re-run)', problem
            using errcode = 'object_in_use';
    end if;
end
$chimpsync$;

-- The drift as `status`, `check`, /readyz and the drift gauge read it: what no longer matches
-- (null when nothing), and the rows held meanwhile. Security definer so that the worker's role
-- reads this much without reading the installation record (which holds the whole mapping).
create function chimpsync.drift_report(out problem text, out held bigint, out held_for text)
language sql stable security definer set search_path = pg_catalog, pg_temp as $chimpsync$
    select (select chimpsync.mapping_drift(i.source_oid, i.expected_columns, i.source_table)
            from chimpsync.installation i where i.source_oid is not null),
           (select count(*) from chimpsync.drifted_changes),
           (select d.problem from chimpsync.drifted_changes d order by d.id desc limit 1)
$chimpsync$;
