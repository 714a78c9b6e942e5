select ({{account}})::text as a,
       ({{key}})::text as k,
       {{email}} as e,
       -- A row without a key (or, with many accounts, without an account) cannot be queued: it
       -- is not in the audience, rather than the cause of a failing write (a key column added empty, say).
       (coalesce(({{filter}}), false) and nullif(btrim({{email}}), '') is not null
        and ({{key}}) is not null and ({{account}}) is not null) as f{{columns}}
from {{rows}} t
