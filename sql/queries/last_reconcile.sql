-- When the last `reconcile --apply` of the audience started (where the next one reads from). $1 audience id
select started_at
from chimpsync.reconcile_runs
where audience_id = $1 and applied
order by started_at desc
limit 1
