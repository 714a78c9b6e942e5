-- Members removed by reconcile belong to nobody any more. $1 addresses, $2 account
delete from chimpsync.synced_contacts
where account = $2::text and lower(email) = any (select lower(a) from unnest($1::text[]) a)
returning customer_key
