-- A customer gave up an address (removed, or changed email): rows parked because that address
-- belonged to someone else get another chance. $1 addresses
update chimpsync.sync_queue
set parked_at = null, attempts = 0, next_attempt_at = now()
where parked_at is not null
  and last_error like 'address already belongs%'
  and lower(btrim(email)) = any(select lower(btrim(x)) from unnest($1::text[]) as x)
