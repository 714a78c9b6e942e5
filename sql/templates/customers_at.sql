-- The customers at the addresses $1 (lower-cased): by the table's address, or by the address
-- chimpsync synced them under (a customer whose address changed is still found); of the account
-- {{account_param}} ('' with one account) only.
select * from {{table}} c
where ({{account}})::text = {{account_param}}::text
  and (lower(btrim(c.{{email}})) = any($1::text[])
       or (c.{{key}})::text in (select s.customer_key from chimpsync.synced_contacts s
                                where s.account = {{account_param}}::text and lower(s.email) = any($1::text[])))
