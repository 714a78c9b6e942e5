-- How many keys the append-only trigger recorded.
select count(*) from public.bench_append
