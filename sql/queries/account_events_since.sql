-- Account state changes after event $1 (null: none, only the newest id), oldest first.
select id, account, state, reason
from chimpsync.account_events
where $1::bigint is not null and id > $1::bigint
union all
select coalesce(max(id), 0), '', '', null from chimpsync.account_events where $1::bigint is null
order by 1
limit 1000
