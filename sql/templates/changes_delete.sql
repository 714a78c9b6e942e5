select o.a, o.k, 'remove', o.e, null::text, o.p
from ({{old}}) o
where o.f
