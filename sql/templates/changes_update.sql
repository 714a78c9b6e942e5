select coalesce(n.a, o.a),
       coalesce(n.k, o.k),
       case when n.f then 'upsert' else 'remove' end,
       case when n.f then n.e else o.e end,
       case when n.f and o.f and lower(o.e) is distinct from lower(n.e) then o.e end,
       case when n.f then {{new_payload}} else {{old_payload}} end
from ({{new}}) n
-- Joined under the C collation: sorting the keys by the database's collation cost more than
-- the join itself.
-- A customer that moved to another account matches no old row: a removal in the old account
-- and an upsert in the new one.
full join ({{old}}) o on o.k collate "C" = n.k collate "C" and o.a collate "C" = n.a collate "C"
-- The payload's input columns are compared, not the payloads: building the payload (jsonb) of
-- every old and new row cost about half of the trigger's time on a 100k-row UPDATE (benchmark
-- scenario 4); it is built only for the rows enqueued.
where (n.f and (o.k is null or not o.f or o.e is distinct from n.e{{changed}}))
   or (o.f and (n.k is null or not n.f))
