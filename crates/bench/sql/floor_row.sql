-- The floor of a row-level change trigger on this queue (benchmark only): one queue row per
-- changed customer and nothing else. For single-row updates it is the cheapest shape.
create or replace function public.bench_floor_row() returns trigger
language plpgsql as $bench$
begin
    insert into chimpsync.sync_queue as q (customer_key, operation, email, payload)
    values (new.id::text, 'upsert', new.email, '{}'::jsonb)
    on conflict (customer_key) do update set version = q.version + 1;
    return null;
end
$bench$;
create trigger bench_floor after update on public.customers
    for each row execute function public.bench_floor_row();
