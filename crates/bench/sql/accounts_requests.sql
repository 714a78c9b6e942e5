-- How many Sync Contacts requests the worker has not served yet.
select count(*) from chimpsync.accounts where sync_requested_at is not null
