-- The customers at the addresses $1 (lower-cased): by the table's address, or by the address
-- chimpsync synced them under (a customer whose address changed is still found).
select * from {{table}} c
where lower(btrim(c.{{email}})) = any($1::text[])
   or (c.{{key}})::text in (select s.customer_key from chimpsync.synced_contacts s
                            where lower(s.email) = any($1::text[]))
