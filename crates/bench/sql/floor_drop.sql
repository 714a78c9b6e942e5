-- Removes the floor and key-list triggers (and the key-list table).
drop trigger if exists bench_floor on public.customers;
drop table if exists public.bench_key_batches
