create or replace function chimpsync.enqueue_row() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $chimpsync$
declare
    drift text;
begin
    if current_setting('chimpsync.origin', true) = 'mailchimp' then
        return null;
    end if;
    -- The capture guard, as in the statement-level functions (here once per row).
    -- First the exact columns and types setup saw (one index scan of the catalog); only when
    -- they differ, whether the difference matters (chimpsync.mapping_drift).
    if not {{fits}} then
        drift := chimpsync.mapping_drift(tg_relid, {{expected}});
    end if;
    if drift is not null then
        insert into chimpsync.drifted_changes (operation, side, row_data, problem)
        select tg_op, s.side, s.row_data, drift
        from (select 'old' as side, to_jsonb(old) as row_data where tg_op <> 'INSERT'
              union all
              select 'new', to_jsonb(new) where tg_op <> 'DELETE') s;
        return null;
    end if;
    if tg_op = 'INSERT' then
        {{insert}};
    elsif tg_op = 'UPDATE' then
        {{update}};
    else
        {{delete}};
    end if;
    return null;
end
$chimpsync$;
