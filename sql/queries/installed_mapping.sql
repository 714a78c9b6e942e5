-- The mapping the last `setup` installed and its record of the triggers' catalog fingerprint
-- (no row before the first `setup`).
select mapping, trigger_catalog
from chimpsync.installation
