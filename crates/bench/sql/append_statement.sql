-- The cheapest durable record of a change any trigger can make (benchmark only, never installed
-- by chimpsync): one key per changed customer appended to a table without any index, no payload,
-- no change detection, no one-row-per-customer merge. Statement-level: the cheaper shape for a
-- bulk update.
create table public.bench_append (customer_key text not null);
create or replace function public.bench_append_statement() returns trigger
language plpgsql as $bench$
begin
    insert into public.bench_append (customer_key) select n.id::text from bench_new n;
    return null;
end
$bench$;
create trigger bench_floor after update on public.customers
    referencing new table as bench_new for each statement execute function public.bench_append_statement();
