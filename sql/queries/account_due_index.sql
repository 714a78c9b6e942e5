-- With many accounts, the claim scans the queue's accounts and each account's due rows through
-- this index; with one account it is not made (it would cost every captured change).
create index if not exists sync_queue_account_due_idx
    on chimpsync.sync_queue (account, next_attempt_at) where parked_at is null
