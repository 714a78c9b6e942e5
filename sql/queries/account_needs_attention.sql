-- Mailchimp refused the account's key or audience: its rows wait until the key or audience is
-- updated. Only if the account is unchanged since the worker read it ($3 its updated_at): a key
-- fixed meanwhile is not blamed for the old one. $1 account, $2 Mailchimp's reason
update chimpsync.accounts
set state = 'needs_attention', state_reason = $2, state_changed_at = now()
where account = $1 and state = 'active' and updated_at = $3
returning account
