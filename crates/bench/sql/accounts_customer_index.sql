-- What the operations guide advises for a large shared table: an index on (account column, key
-- column), so that one account's Sync Contacts walks its own customers only.
create index if not exists customers_store_id_idx on public.customers (store, id);
