select ({{key}})::text as k,
       {{email}} as e,
       (coalesce(({{filter}}), false) and nullif(btrim({{email}}), '') is not null) as f{{columns}}
from {{rows}} t
