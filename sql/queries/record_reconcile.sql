-- Record a completed reconcile run. $1 audience id, $2 started at, $3 since (null = full),
-- $4 applied, $5 members read, $6 differences found
insert into chimpsync.reconcile_runs (audience_id, started_at, since, applied, members_read, differences)
values ($1, $2, $3, $4, $5, $6)
