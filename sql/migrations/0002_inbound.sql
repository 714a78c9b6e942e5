-- chimpsync 0002: the Mailchimp -> database direction: webhook events as received, and the record
-- of reconcile runs.

create table chimpsync.inbound_events (
    id              bigint generated always as identity primary key,
    source          text        not null default 'webhook' check (source in ('webhook', 'reconcile')),
    event_type      text        not null,
    fired_at        text,
    list_id         text,
    email           text,
    new_email       text,
    payload         jsonb       not null,
    dedupe_key      text        generated always as (md5(source || '|' || event_type || '|' || coalesce(fired_at, '') || '|' || payload::text)) stored,
    received_at     timestamptz not null default now(),
    status          text        not null default 'received'
                    check (status in ('received', 'applied', 'failed', 'ignored')),
    attempts        integer     not null default 0,
    next_attempt_at timestamptz default now(),
    applied_at      timestamptz,
    rows_affected   bigint,
    last_error      text,
    constraint inbound_events_dedupe_key_key unique (dedupe_key)
);

-- The retry loop walks this index: events not applied yet whose next attempt is due.
create index inbound_events_due_idx on chimpsync.inbound_events (next_attempt_at)
    where status in ('received', 'failed') and next_attempt_at is not null;
create index inbound_events_received_at_idx on chimpsync.inbound_events (received_at);

comment on table chimpsync.inbound_events is
    'Changes Mailchimp reported (webhook calls, and differences `chimpsync reconcile --apply` found), stored before they are '
    'applied to the source table through the mapping''s [inbound] statements. A replayed webhook has the same dedupe_key and is ignored.';
comment on column chimpsync.inbound_events.source is 'webhook: a call of Mailchimp''s webhook; reconcile: a difference `chimpsync reconcile --apply` found.';
comment on column chimpsync.inbound_events.event_type is 'Mailchimp''s `type`: subscribe, unsubscribe, profile, upemail, cleaned (campaign and unknown types are ignored).';
comment on column chimpsync.inbound_events.fired_at is 'Mailchimp''s `fired_at` as sent (YYYY-MM-DD HH:MM:SS, UTC), or null.';
comment on column chimpsync.inbound_events.list_id is 'The audience the event is about (`data[list_id]`); an event for another audience is ignored.';
comment on column chimpsync.inbound_events.email is 'The contact''s address (`data[email]`; for upemail the old address, `data[old_email]`): $1 of the [inbound] statement.';
comment on column chimpsync.inbound_events.new_email is 'For upemail, the new address (`data[new_email]`): $2 of the [inbound] statement.';
comment on column chimpsync.inbound_events.payload is 'The whole event as JSON, bracket keys nested ({"type", "fired_at", "data": {"email", "merges": {...}}}): $3 of the [inbound] statement.';
comment on column chimpsync.inbound_events.dedupe_key is 'md5 of source, type, fired_at and payload: the same webhook delivered twice is stored once.';
comment on column chimpsync.inbound_events.received_at is 'When chimpsync stored the event.';
comment on column chimpsync.inbound_events.status is 'received: not applied yet; applied: done; failed: the last attempt failed (retried at next_attempt_at while that is set); ignored: nothing to do (last_error says why).';
comment on column chimpsync.inbound_events.attempts is 'How many times applying was tried.';
comment on column chimpsync.inbound_events.next_attempt_at is 'When the retry loop tries a received or failed event again; null once applied, ignored or given up.';
comment on column chimpsync.inbound_events.applied_at is 'When the event was applied (or found to need nothing).';
comment on column chimpsync.inbound_events.rows_affected is 'Rows the [inbound] statement changed; null when the mapping has no statement for the type.';
comment on column chimpsync.inbound_events.last_error is 'Why the last attempt failed, or why the event was ignored.';

create table chimpsync.reconcile_runs (
    id              bigint generated always as identity primary key,
    audience_id     text        not null,
    started_at      timestamptz not null,
    finished_at     timestamptz not null default now(),
    since           timestamptz,
    applied         boolean     not null,
    members_read    bigint      not null,
    differences     bigint      not null
);

create index reconcile_runs_audience_idx on chimpsync.reconcile_runs (audience_id, started_at desc) where applied;

comment on table chimpsync.reconcile_runs is 'Completed `chimpsync reconcile` runs. The next run without --since reads the members changed since the start of the last run with --apply.';
comment on column chimpsync.reconcile_runs.since is 'The since_last_changed the run used; null for a full run.';
comment on column chimpsync.reconcile_runs.applied is 'Whether the run fixed what it found (--apply); only such runs move the mark.';
comment on column chimpsync.reconcile_runs.members_read is 'Mailchimp members the run read.';
comment on column chimpsync.reconcile_runs.differences is 'Differences the run found.';
