-- One account's encrypted API key, for the worker to decrypt with CHIMPSYNC_SECRET_KEY.
select account, api_key, encrypted_for
from chimpsync.accounts
where account = $1
