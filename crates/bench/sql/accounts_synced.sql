-- How many contacts of the account $1 Mailchimp has acknowledged.
select count(*) from chimpsync.synced_contacts where account = $1
