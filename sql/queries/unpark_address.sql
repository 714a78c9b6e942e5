-- A customer gave up an address (removed, or changed email): rows parked because that address
-- belonged to someone else get another chance. $1 addresses, $2 account
update chimpsync.sync_queue
set parked_at = null, attempts = 0, next_attempt_at = now()
where parked_at is not null
  and account = $2::text
  and last_error like 'address already belongs%'
  and lower(btrim(email)) = any(select lower(btrim(x)) from unnest($1::text[]) as x)
