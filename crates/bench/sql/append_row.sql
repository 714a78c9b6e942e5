-- The cheapest durable record of a change any trigger can make (benchmark only, never installed
-- by chimpsync): one key per changed customer appended to a table without any index, no payload,
-- no change detection, no one-row-per-customer merge. Row-level: the cheaper shape for
-- single-row updates.
create table public.bench_append (customer_key text not null);
create or replace function public.bench_append_row() returns trigger
language plpgsql as $bench$
begin
    insert into public.bench_append (customer_key) values (new.id::text);
    return null;
end
$bench$;
create trigger bench_floor after update on public.customers
    for each row execute function public.bench_append_row();
