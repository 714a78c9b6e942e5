-- "Sync Contacts" of the accounts $1 (the worker queues their customers).
select chimpsync.sync_contacts(a) from unnest($1::text[]) as a
