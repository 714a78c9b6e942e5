select coalesce(n.k, o.k),
       case when n.f then 'upsert' else 'remove' end,
       case when n.f then n.e else o.e end,
       case when n.f and o.f and lower(o.e) is distinct from lower(n.e) then o.e end,
       case when n.f then n.p else o.p end
from ({{new}}) n
full join ({{old}}) o on o.k = n.k
where (n.f and (o.k is null or not o.f or o.e is distinct from n.e or o.p is distinct from n.p))
   or (o.f and (n.k is null or not n.f))
