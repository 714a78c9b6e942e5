-- What the webhook receiver checks a call to /webhooks/mailchimp/ACCOUNT/SECRET against. $1 account
select webhook_secret, audience_id
from chimpsync.accounts
where account = $1
