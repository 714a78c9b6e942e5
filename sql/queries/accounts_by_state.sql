-- How many accounts are in each state ('unknown': named by customers, not in chimpsync.accounts).
select state, count(*) from chimpsync.account_summary group by state
