-- chimpsync 0001: the outbox queue, the record of what Mailchimp holds, and the summary view.

create table chimpsync.sync_queue (
    id               bigint generated always as identity primary key,
    customer_key     text        not null,
    operation        text        not null check (operation in ('upsert', 'remove')),
    email            text,
    previous_email   text,
    payload          jsonb       not null default '{}'::jsonb,
    version          bigint      not null default 1,
    enqueued_at      timestamptz not null default now(),
    changed_at       timestamptz not null default now(),
    attempts         integer     not null default 0,
    next_attempt_at  timestamptz not null default now(),
    lease_owner      text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    last_error       text,
    parked_at        timestamptz,
    maybe_applied    jsonb,
    constraint sync_queue_customer_key_key unique (customer_key)
) with (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_limit = 10000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);

-- The claim query walks this index: due rows that are not parked, oldest first.
create index sync_queue_due_idx on chimpsync.sync_queue (next_attempt_at) where parked_at is null;
create index sync_queue_parked_idx on chimpsync.sync_queue (parked_at) where parked_at is not null;

comment on table chimpsync.sync_queue is
    'Outbox of customer changes waiting to reach Mailchimp. One row per customer: later changes '
    'overwrite the pending row (latest state wins) and bump version. A row is deleted only after '
    'Mailchimp acknowledged the version that was sent.';
comment on column chimpsync.sync_queue.id is 'Queue row id; what `chimpsync retry ID` takes.';
comment on column chimpsync.sync_queue.customer_key is 'The source row''s key column, as text.';
comment on column chimpsync.sync_queue.operation is 'upsert: the customer should be in the audience with this state; remove: it should not (row deleted or left the filter).';
comment on column chimpsync.sync_queue.email is 'The customer''s email address now (for remove: the address to remove).';
comment on column chimpsync.sync_queue.previous_email is 'The address before the first pending email change, when the email changed; the worker renames that Mailchimp member.';
comment on column chimpsync.sync_queue.payload is 'Snapshot of the mapped columns: {"merge_fields": {TAG: value}, "tags": {column: value}, "consent": bool}.';
comment on column chimpsync.sync_queue.version is 'Bumped by every change; the worker deletes the row only if the version it sent is still the latest.';
comment on column chimpsync.sync_queue.enqueued_at is 'When this customer''s first pending change was queued.';
comment on column chimpsync.sync_queue.changed_at is 'When the latest change was queued.';
comment on column chimpsync.sync_queue.attempts is 'How many times a worker has claimed this row since it last succeeded or was retried by hand.';
comment on column chimpsync.sync_queue.next_attempt_at is 'Not claimed before this time: now for fresh rows, the backoff for retries, the lease expiry while in flight.';
comment on column chimpsync.sync_queue.lease_owner is 'Which worker (host/pid) holds the row, while in flight.';
comment on column chimpsync.sync_queue.lease_token is 'Fencing token of the claim; acknowledgements must present it.';
comment on column chimpsync.sync_queue.lease_expires_at is 'When an unfinished claim lapses and the row becomes claimable again.';
comment on column chimpsync.sync_queue.last_error is 'Why the last attempt failed (Mailchimp''s title and detail), or why the row is parked.';
comment on column chimpsync.sync_queue.maybe_applied is 'What failed attempts whose answer was lost may have made Mailchimp hold: {"emails": [...], "tags": [...], "consents": [...]}. The next attempt looks for the member under those addresses too, clears those tags if no longer wanted and sets the status again if a consent sent differs, so a lost answer never leaves a duplicate, a stale tag or a wrong status.';
comment on column chimpsync.sync_queue.parked_at is 'Set when the row failed permanently; parked rows wait for `chimpsync retry` or a new change of the customer.';

create table chimpsync.synced_contacts (
    customer_key text        primary key,
    email        text        not null,
    consent      boolean     not null,
    tags         jsonb       not null default '[]'::jsonb,
    synced_at    timestamptz not null default now()
) with (fillfactor = 80);

create index synced_contacts_email_idx on chimpsync.synced_contacts (lower(email));
create index synced_contacts_synced_at_idx on chimpsync.synced_contacts (synced_at);

comment on table chimpsync.synced_contacts is
    'What chimpsync last made Mailchimp hold for each customer: the address the member lives under, the consent sent, the tags set. '
    'Used to rename on email change, to change status only when consent changed, and to diff tags.';
comment on column chimpsync.synced_contacts.email is 'The address of the Mailchimp member that belongs to this customer. One address belongs to one customer.';
comment on column chimpsync.synced_contacts.consent is 'The consent value last sent.';
comment on column chimpsync.synced_contacts.tags is 'The tags chimpsync last set active (JSON array of names).';
comment on column chimpsync.synced_contacts.synced_at is 'When Mailchimp last acknowledged a change of this customer.';

create table chimpsync.installation (
    singleton     boolean     primary key default true check (singleton),
    source_table  text        not null,
    trigger_shape text        not null,
    mapping       jsonb       not null,
    installed_at  timestamptz not null default now()
);
comment on table chimpsync.installation is 'The table whose triggers `chimpsync setup` installed last, and the mapping it used.';

create view chimpsync.queue_summary as
select
    count(*) filter (where parked_at is null and (lease_expires_at is null or lease_expires_at <= now()) and attempts = 0) as pending,
    count(*) filter (where parked_at is null and lease_expires_at > now())                                            as in_flight,
    count(*) filter (where parked_at is null and (lease_expires_at is null or lease_expires_at <= now()) and attempts > 0) as retrying,
    count(*) filter (where parked_at is not null)                                                                   as parked,
    coalesce(extract(epoch from now() - min(enqueued_at) filter (where parked_at is null)), 0)::double precision      as oldest_pending_seconds,
    (select max(synced_at) from chimpsync.synced_contacts)                                                          as last_synced_at
from chimpsync.sync_queue;

comment on view chimpsync.queue_summary is 'The queue at a glance; what `chimpsync status` prints.';
