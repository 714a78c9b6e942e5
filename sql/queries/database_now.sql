-- The database clock (reconcile runs are timed by it, like every other chimpsync timestamp).
select now()
