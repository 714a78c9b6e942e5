-- The encrypted API keys, for a rotation; locked until it commits.
select account, api_key, encrypted_for
from chimpsync.accounts
order by account
for update
