-- The floor of any change trigger on this queue (benchmark only, never installed by chimpsync):
-- a statement-level trigger that writes one queue row per changed customer and nothing else
-- (no payload, no change detection, no filter). What it costs, chimpsync's trigger cannot avoid.
create or replace function public.bench_floor_statement() returns trigger
language plpgsql as $bench$
begin
    insert into chimpsync.sync_queue as q (customer_key, operation, email, payload)
    select n.id::text, 'upsert', n.email, '{}'::jsonb from bench_new n
    on conflict (customer_key) do update set version = q.version + 1;
    return null;
end
$bench$;
create trigger bench_floor after update on public.customers
    referencing new table as bench_new for each statement execute function public.bench_floor_statement();
