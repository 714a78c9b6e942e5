-- Removes the floor, key-list and append-only triggers (and the tables of the last two).
drop trigger if exists bench_floor on public.customers;
drop table if exists public.bench_key_batches;
drop table if exists public.bench_append
