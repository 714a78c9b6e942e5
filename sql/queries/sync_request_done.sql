-- Sync Contacts of an account queued its customers; a request made meanwhile stays. $1 account,
-- $2 the request served
update chimpsync.accounts set sync_requested_at = null
where account = $1 and sync_requested_at = $2
