select ({{key}})::text as k,
       {{email}} as e,
       -- A row without a key cannot be queued (customer_key is not null): it is not in the
       -- audience, rather than the cause of a failing write (a key column added empty, say).
       (coalesce(({{filter}}), false) and nullif(btrim({{email}}), '') is not null
        and ({{key}}) is not null) as f{{columns}}
from {{rows}} t
