select ({{key}})::text collate "C" as k,
       {{email}} as e,
       (coalesce(({{filter}}), false) and nullif(btrim({{email}}), '') is not null) as f{{inputs}}
from {{rows}} t
