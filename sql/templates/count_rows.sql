-- The customer table's rows, of account $1 only unless it is null (backfill's progress).
select count(*) from {{table}} c where $1::text is null or {{account}} = ($1::text)::{{account_type}}
