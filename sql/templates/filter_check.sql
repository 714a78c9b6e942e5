-- Whether the mapping's filter can be evaluated on the table (a filter naming a missing column
-- would make every trigger statement fail). Reads no row.
select 1 from {{table}} t where ({{filter}}) limit 0
