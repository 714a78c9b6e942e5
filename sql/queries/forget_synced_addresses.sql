-- Members removed by reconcile belong to nobody any more. $1 addresses
delete from chimpsync.synced_contacts
where lower(email) = any (select lower(a) from unnest($1::text[]) a)
returning customer_key
