-- How many keys the key-list trigger recorded.
select coalesce(sum(cardinality(keys)), 0)::bigint from public.bench_key_batches
