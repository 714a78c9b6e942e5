-- The customers of `gone` (see drift_replay.sql), queued for removal.
select g.a, g.k, 'remove', g.e, null::text, g.p
from gone g
