-- Delete up to $2 inbound events that are done (applied, or found to need nothing) and older than
-- $1 seconds on the database's clock: they hold addresses and are no longer needed. Events not
-- applied yet, and failed ones, are kept. An event is received before it is applied, so the
-- received_at bound is implied by the other; it lets the walk use received_at's index.
-- Returns the number deleted.
with done as (
    select id
    from chimpsync.inbound_events
    where received_at < now() - make_interval(secs => $1::float8)
      and status in ('applied', 'ignored')
      and coalesce(applied_at, received_at) < now() - make_interval(secs => $1::float8)
    order by received_at
    limit $2
    for update skip locked
),
deleted as (
    delete from chimpsync.inbound_events e
    using done
    where e.id = done.id
    returning e.id
)
select count(*) from deleted
