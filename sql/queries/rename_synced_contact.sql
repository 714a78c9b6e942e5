-- Mailchimp moved a member to a new address (upemail): the customer's member now lives there.
-- $1 old address, $2 new address, $3 account
update chimpsync.synced_contacts
set email = $2
where account = $3::text and lower(email) = lower($1) and lower(email) <> lower($2)
returning customer_key
