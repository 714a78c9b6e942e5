select n.a, n.k, 'upsert', n.e, null::text, n.p
from ({{new}}) n
where n.f
