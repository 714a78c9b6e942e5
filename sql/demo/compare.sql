-- The table's side of the demo's final comparison: every customer that should be a member, and
-- whether its queue row is parked (a parked customer is reported, not compared).
select c.id::text, lower(c.email), c.first_name, c.last_name, coalesce(c.store, ''), c.customer_type, c.consent_contact,
       exists (select 1 from chimpsync.sync_queue q where q.customer_key = c.id::text and q.parked_at is not null),
       nullif(btrim(c.pet_type), '')
from public.customers c
where c.deleted_at is null and nullif(btrim(c.email), '') is not null
order by c.id
