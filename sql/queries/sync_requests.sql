-- Accounts whose Sync Contacts was requested (chimpsync.sync_contacts), oldest request first.
select account, sync_requested_at from chimpsync.accounts
where sync_requested_at is not null and state <> 'disabled'
order by sync_requested_at
