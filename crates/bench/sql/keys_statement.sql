-- Not a queue row per customer at all (benchmark only, never installed by chimpsync): a
-- statement-level trigger that writes one row per statement holding the keys it changed. It shows
-- what a change trigger costs when it does not write a row per customer (the customer-facing
-- cost of a "notify, expand later" design).
create table public.bench_key_batches (
    id   bigserial primary key,
    keys text[] not null
);
create or replace function public.bench_keys_statement() returns trigger
language plpgsql as $bench$
begin
    insert into public.bench_key_batches (keys) select array_agg(n.id::text) from bench_new n;
    return null;
end
$bench$;
create trigger bench_floor after update on public.customers
    referencing new table as bench_new for each statement execute function public.bench_keys_statement();
