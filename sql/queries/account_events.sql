-- An account's latest state changes, newest first. $1 account, $2 how many
select at, state, reason
from chimpsync.account_events
where account = $1
order by id desc
limit $2
