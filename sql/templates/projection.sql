select ({{key}})::text as k,
       {{email}} as e,
       {{payload}} as p,
       (coalesce(({{filter}}), false) and nullif(btrim({{email}}), '') is not null) as f
from {{rows}} t
