-- The distinct values of an `[[interests]]` column (each names an interest), for `setup
-- --mailchimp` to create the interests it knows of; one more than it takes, to tell "more".
select v
from (select distinct btrim(({{column}})::text) as v from {{table}} where {{column}} is not null) d
where v <> ''
order by v
limit {{limit}}
