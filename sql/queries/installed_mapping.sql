-- The mapping the last `setup` installed and its record of the triggers' catalog fingerprint
-- (no row before the first `setup`), through the function a worker's role may call.
select mapping, trigger_catalog
from chimpsync.installed_mapping()
