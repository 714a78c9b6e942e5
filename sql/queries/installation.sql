-- What `setup` installed last; the last column says whether $1 (the mapping) is the one recorded.
select source_table, trigger_sql, trigger_catalog, mapping = $1
from chimpsync.installation
