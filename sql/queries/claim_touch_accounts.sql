-- After a claim of many accounts (replaces {{touch}} in claim_batch.sql): the accounts that got
-- rows go to the back of the line; a picked account that got none keeps its place.
,
touched as (
    update chimpsync.accounts a set last_claimed_at = clock_timestamp()
    where a.account in (select c.account from claimed c)
)
