-- Mailchimp throttled an API key: no replica claims rows of the accounts on that key for $2
-- seconds. $1 key group
update chimpsync.accounts
set paused_until = greatest(coalesce(paused_until, now()), now() + make_interval(secs => $2::float8))
where key_group = $1 and state = 'active'
