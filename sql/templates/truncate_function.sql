create or replace function chimpsync.enqueue_truncate() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $chimpsync$
-- A TRUNCATE has no transition table: the customers removed are the ones chimpsync knows of.
-- The removals are subject to the mass-removal guard of the claim (sql/queries/claim_batch.sql).
begin
    if current_setting('chimpsync.origin', true) = 'mailchimp' then
        return null;
    end if;
    -- Queued upserts of customers never synced that nothing sent yet: nothing to remove.
    delete from chimpsync.sync_queue q
    where q.operation = 'upsert'
      and q.lease_token is null
      and coalesce(jsonb_array_length(q.maybe_applied -> 'emails'), 0) = 0
      and not exists (select 1 from chimpsync.synced_contacts s where s.account = q.account and s.customer_key = q.customer_key);
    {{enqueue}};
    return null;
end
$chimpsync$;
