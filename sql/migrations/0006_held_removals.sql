-- chimpsync 0006: removals held by the mass-removal guard until a person has looked.

alter table chimpsync.sync_queue
    add column held_at     timestamptz,
    add column held_reason text,
    add column released_at timestamptz;

-- The guard counts the removals queued within its window before every claim: this index keeps
-- that count to the removals themselves (normally none), however long the queue is.
create index sync_queue_removals_idx on chimpsync.sync_queue (changed_at)
    where operation = 'remove' and held_at is null and parked_at is null and released_at is null;

comment on column chimpsync.sync_queue.held_at is 'Set when the mass-removal guard held this removal (too many removals queued at once for the synced audience); held rows are not claimed until `chimpsync release-removals` or a new change of the customer.';
comment on column chimpsync.sync_queue.released_at is 'Set when a person released this held removal; the guard does not count it again.';
comment on column chimpsync.sync_queue.held_reason is 'Why the removal is held: how many removals were queued within the window, against how many synced contacts and which limit.';

create or replace view chimpsync.queue_summary as
select
    count(*) filter (where parked_at is null and held_at is null and (lease_expires_at is null or lease_expires_at <= now()) and attempts = 0) as pending,
    count(*) filter (where parked_at is null and held_at is null and lease_expires_at > now())                                            as in_flight,
    count(*) filter (where parked_at is null and held_at is null and (lease_expires_at is null or lease_expires_at <= now()) and attempts > 0) as retrying,
    count(*) filter (where parked_at is not null)                                                                                   as parked,
    coalesce(extract(epoch from now() - min(enqueued_at) filter (where parked_at is null and held_at is null)), 0)::double precision as oldest_pending_seconds,
    (select max(synced_at) from chimpsync.synced_contacts)                                                                          as last_synced_at,
    count(*) filter (where held_at is not null and parked_at is null)                                                               as held,
    min(held_reason) filter (where held_at is not null and parked_at is null)                                                       as held_reason
from chimpsync.sync_queue;

comment on view chimpsync.queue_summary is 'The queue at a glance; what `chimpsync status` prints. Held removals count as held only, not as pending.';

create function chimpsync.release_held_removals(ids bigint[] default null) returns setof bigint
language sql volatile set search_path = pg_catalog, pg_temp as $chimpsync$
    update chimpsync.sync_queue
    -- held rows wait at next_attempt_at = infinity, out of the claim's range
    set held_at = null, held_reason = null, released_at = now(), next_attempt_at = now()
    where held_at is not null and (ids is null or id = any(ids))
    returning id
$chimpsync$;

comment on function chimpsync.release_held_removals(bigint[]) is
    'Sends removals the mass-removal guard held, after a person has looked: all of them (no argument) '
    'or the given queue row ids. Returns the ids released. What `chimpsync release-removals` runs.';
