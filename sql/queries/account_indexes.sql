-- Setup of a mapping with many accounts: the queue and the synced contacts keyed by account and
-- customer (a customer moving to another account is a removal in the old one and an upsert in
-- the new one), one address per account, and the index the claim picks accounts and rows
-- through. With one account none of this is made: the keys stay those of the customer alone.
create unique index if not exists sync_queue_account_customer_key_key
    on chimpsync.sync_queue (account, customer_key);
alter table chimpsync.sync_queue drop constraint if exists sync_queue_customer_key_key;
create unique index if not exists synced_contacts_account_customer_key_key
    on chimpsync.synced_contacts (account, customer_key);
alter table chimpsync.synced_contacts drop constraint if exists synced_contacts_pkey;
create index if not exists synced_contacts_account_email_idx
    on chimpsync.synced_contacts (account, lower(email));
create index if not exists sync_queue_account_due_idx
    on chimpsync.sync_queue (account, next_attempt_at) where parked_at is null;
-- Every claim reads due rows one account at a time. With the due index of one account there, a
-- plan made for "some account" of a queue mostly of one big account walks that index past the
-- big account's rows to find a small account's few; without it the per-account index is the
-- only way to them. It also saves an index write per queue row.
drop index if exists chimpsync.sync_queue_due_idx;
-- The claim walks the accounts waiting longest first.
create index if not exists accounts_claim_order_idx
    on chimpsync.accounts (last_claimed_at, account) where enabled and state = 'active';
