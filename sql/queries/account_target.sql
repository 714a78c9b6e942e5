-- What the worker needs to send an account's rows. $1 account
select audience_id, api_key, encrypted_for, key_group, updated_at
from chimpsync.accounts
where account = $1
