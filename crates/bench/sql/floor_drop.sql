-- Removes the floor trigger.
drop trigger if exists bench_floor on public.customers
