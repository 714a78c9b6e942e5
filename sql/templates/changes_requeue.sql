-- The customers of `projected` as reconcile re-queues them: upserted when they belong in the
-- audience, removed otherwise.
select p.a, p.k, case when p.f then 'upsert' else 'remove' end, p.e, null::text, p.p
from projected p
