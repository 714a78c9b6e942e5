create or replace function chimpsync.{{function}}() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp set jit = off as $chimpsync$
-- jit = off: a bulk statement's transition tables make the enqueue look expensive enough for
-- JIT, which then compiles it anew on every execution (about a fifth of the trigger's time for
-- a 100k-row UPDATE); the plan is simple and gains nothing from it. Benchmark scenario 4.
declare
    drift text;
begin
    -- Changes written by chimpsync's own inbound path (Mailchimp -> table) must not echo back.
    if current_setting('chimpsync.origin', true) = 'mailchimp' then
        return null;
    end if;
    -- The capture guard: when a schema change left a mapped column missing or of another kind,
    -- the queueing statement would fail and take the application's write with it. The rows are
    -- held whole instead, until `setup` runs with a mapping that fits.
    -- First the exact columns and types setup saw (one index scan of the catalog); only when
    -- they differ, whether the difference matters (chimpsync.mapping_drift).
    if not {{fits}} then
        drift := chimpsync.mapping_drift(tg_relid, {{expected}});
    end if;
    if drift is not null then
        {{held}};
        return null;
    end if;
    {{statement}};
    return null;
end
$chimpsync$;
