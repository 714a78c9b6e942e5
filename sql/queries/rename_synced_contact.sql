-- Mailchimp moved a member to a new address (upemail): the customer's member now lives there.
-- $1 old address, $2 new address
update chimpsync.synced_contacts
set email = $2
where lower(email) = lower($1) and lower(email) <> lower($2)
returning customer_key
