-- chimpsync 0009: many Mailchimp accounts from one installation. Every queue row, synced contact
-- and webhook event carries its account ('' in single-account mode, where nothing else changes).

alter table chimpsync.sync_queue add column account text not null default '';
alter table chimpsync.synced_contacts add column account text not null default '';
alter table chimpsync.inbound_events add column account text not null default '';

comment on column chimpsync.sync_queue.account is 'The account (business) the customer belongs to: the mapping''s [source].account column as text; '''' in single-account mode.';
comment on column chimpsync.synced_contacts.account is 'The account whose audience holds the member; '''' in single-account mode.';
comment on column chimpsync.inbound_events.account is 'The account whose webhook received the event; '''' in single-account mode.';

-- The same webhook delivered to two accounts is two events (unchanged for single-account rows).
alter table chimpsync.inbound_events drop column dedupe_key;
alter table chimpsync.inbound_events add column dedupe_key text generated always as
    (md5(case when account = '' then '' else account || '|' end || source || '|' || event_type || '|'
         || coalesce(fired_at, '') || '|' || payload::text)) stored;
alter table chimpsync.inbound_events add constraint inbound_events_dedupe_key_key unique (dedupe_key);

-- The keys by account (one queue row per customer and account, one address per account) are made
-- by `setup` of a mapping with many accounts (sql/queries/account_indexes.sql): with one account
-- the keys stay as they were, so a worker of an earlier release still acknowledges its claims.

-- The key-encryption key's public half. Account API keys are encrypted with it (pgcrypto's
-- pgp_pub_encrypt), so the application's SQL can store a key it cannot read back; only the worker
-- holds the private half (CHIMPSYNC_SECRET_KEY).
create table chimpsync.key_encryption (
    singleton    boolean     primary key default true check (singleton),
    public_key   text        not null,
    fingerprint  text        not null,
    installed_at timestamptz not null default now()
);
comment on table chimpsync.key_encryption is 'The public key (OpenPGP, armored) that encrypts account API keys; `chimpsync setup` installs it from CHIMPSYNC_SECRET_KEY.';

create table chimpsync.accounts (
    account           text        primary key check (account <> ''),
    audience_id       text,
    api_key           bytea       not null,
    api_key_last4     text        not null,
    key_group         integer     not null,
    encrypted_for     text        not null,
    enabled           boolean     not null default true,
    state             text        not null default 'active'
                      check (state in ('active', 'disabled', 'needs_attention')),
    state_reason      text,
    state_changed_at  timestamptz not null default now(),
    paused_until      timestamptz,
    webhook_secret    text        not null default replace(gen_random_uuid()::text, '-', ''),
    last_synced_at    timestamptz,
    last_claimed_at   timestamptz not null default '-infinity',
    sync_requested_at timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint accounts_enabled_state check (enabled = (state <> 'disabled'))
);
create index accounts_key_group_idx on chimpsync.accounts (key_group);

comment on table chimpsync.accounts is
    'The Mailchimp accounts chimpsync serves in multi-account mode, one per business. Change them with the '
    'chimpsync.connect_account, update_account, enable_account, disable_account, remove_account and sync_contacts '
    'functions (or the `chimpsync account` commands).';
comment on column chimpsync.accounts.account is 'The value of the mapping''s [source].account column, as text.';
comment on column chimpsync.accounts.audience_id is 'The account''s audience (list) id; null until one is set or created.';
comment on column chimpsync.accounts.api_key is 'The Mailchimp API key, encrypted (pgp_pub_encrypt) with chimpsync.key_encryption; only the worker can decrypt it.';
comment on column chimpsync.accounts.api_key_last4 is 'The key''s last 4 characters, to tell keys apart.';
comment on column chimpsync.accounts.key_group is 'The same number for accounts with the same API key (32 bits of its SHA-256): they share one connection cap and one throttle pause.';
comment on column chimpsync.accounts.encrypted_for is 'Fingerprint of the key-encryption key api_key is encrypted for.';
comment on column chimpsync.accounts.enabled is 'The account''s "Mailchimp Sync" switch; when off nothing is sent and its queue keeps its rows.';
comment on column chimpsync.accounts.state is 'active; disabled (switched off); needs_attention (Mailchimp refused the key or the audience is gone: see state_reason; fixed by update_account).';
comment on column chimpsync.accounts.paused_until is 'Mailchimp throttled this account''s key: nothing is claimed for it before this time.';
comment on column chimpsync.accounts.webhook_secret is 'The secret in this account''s webhook URL (/webhooks/mailchimp/ACCOUNT/SECRET).';
comment on column chimpsync.accounts.last_synced_at is 'When Mailchimp last acknowledged a change for this account: the settings page''s "Last Sync".';
comment on column chimpsync.accounts.last_claimed_at is 'When a worker last claimed rows of this account: claims go to the account waiting longest.';
comment on column chimpsync.accounts.sync_requested_at is 'Sync Contacts was requested: the worker queues every customer of the account, then clears this.';

create table chimpsync.account_events (
    id       bigint generated always as identity primary key,
    account  text        not null,
    at       timestamptz not null default now(),
    state    text        not null,
    reason   text
);
create index account_events_account_idx on chimpsync.account_events (account, id);
comment on table chimpsync.account_events is 'Every change of an account''s state (connected, switched off or on, needs attention, updated, removed), oldest first.';

create function chimpsync.record_account_event() returns trigger
language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        insert into chimpsync.account_events (account, state, reason) values (old.account, 'removed', null);
        return old;
    end if;
    if tg_op = 'INSERT' or old.state is distinct from new.state
       or old.state_reason is distinct from new.state_reason then
        insert into chimpsync.account_events (account, state, reason)
        values (new.account, case when tg_op = 'INSERT' then 'connected: ' || new.state else new.state end, new.state_reason);
    end if;
    return new;
end
$$;
create trigger accounts_events after insert or update or delete on chimpsync.accounts
    for each row execute function chimpsync.record_account_event();

-- Encrypts an API key for the installed key-encryption key, with pgcrypto wherever it lives.
create function chimpsync.encrypt_api_key(api_key text, out ciphertext bytea, out fingerprint text)
language plpgsql as $$
declare
    ext_schema text;
    public_key text;
begin
    if api_key is null or btrim(api_key) = '' or api_key ~ '\s' then
        raise exception 'the API key is empty or contains spaces' using errcode = '22023';
    end if;
    select n.nspname into ext_schema
    from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'pgcrypto';
    if ext_schema is null then
        raise exception 'pgcrypto is not installed in this database'
            using errcode = '55000', hint = 'Run `chimpsync setup` with a mapping that names [source].account; it installs pgcrypto.';
    end if;
    -- for share: a rotation (which locks it for update) waits, or is waited for; a key sealed
    -- meanwhile is never sealed for the key being replaced.
    select k.public_key, k.fingerprint into public_key, fingerprint from chimpsync.key_encryption k for share;
    if public_key is null then
        raise exception 'no key-encryption key is installed'
            using errcode = '55000', hint = 'Run `chimpsync setup` with CHIMPSYNC_SECRET_KEY set.';
    end if;
    execute format('select %1$I.pgp_pub_encrypt($1, %1$I.dearmor($2))', ext_schema)
        into ciphertext using api_key, public_key;
end
$$;

create function chimpsync.key_group(api_key text) returns integer
language sql immutable strict as $$
    select ('x' || left(encode(sha256(convert_to(api_key, 'UTF8')), 'hex'), 8))::bit(32)::integer
$$;

-- Connects an account, or replaces its audience and key if it exists; a connected account is
-- active (or disabled when enabled is false). With sync_contacts, its customers are queued.
create function chimpsync.connect_account(account text, audience_id text, api_key text,
                                          enabled boolean default true, sync_contacts boolean default false)
returns void
language plpgsql as $$
#variable_conflict use_variable
declare
    sealed record;
begin
    if account is null or account = '' then
        raise exception 'the account is empty' using errcode = '22023';
    end if;
    sealed := chimpsync.encrypt_api_key(api_key);
    insert into chimpsync.accounts as a (account, audience_id, api_key, api_key_last4, key_group, encrypted_for,
                                         enabled, state, sync_requested_at)
    values (account, nullif(btrim(audience_id), ''), sealed.ciphertext, right(api_key, 4),
            chimpsync.key_group(api_key), sealed.fingerprint, enabled,
            case when enabled then 'active' else 'disabled' end,
            case when sync_contacts then now() end)
    on conflict on constraint accounts_pkey do update set
        audience_id       = excluded.audience_id,
        api_key           = excluded.api_key,
        api_key_last4     = excluded.api_key_last4,
        key_group         = excluded.key_group,
        encrypted_for     = excluded.encrypted_for,
        enabled           = excluded.enabled,
        state             = excluded.state,
        state_reason      = null,
        state_changed_at  = case when a.state is distinct from excluded.state then now() else a.state_changed_at end,
        paused_until      = null,
        sync_requested_at = coalesce(excluded.sync_requested_at, a.sync_requested_at),
        updated_at        = now();
end
$$;

-- Changes an account's audience or key (null = unchanged). Either change ends needs_attention.
create function chimpsync.update_account(account text, audience_id text default null, api_key text default null)
returns void
language plpgsql as $$
#variable_conflict use_variable
declare
    sealed bytea;
    sealed_for text;
begin
    if api_key is not null then
        select e.ciphertext, e.fingerprint into sealed, sealed_for from chimpsync.encrypt_api_key(api_key) e;
    end if;
    update chimpsync.accounts a set
        audience_id      = coalesce(nullif(btrim(audience_id), ''), a.audience_id),
        api_key          = coalesce(sealed, a.api_key),
        api_key_last4    = coalesce(right(api_key, 4), a.api_key_last4),
        key_group        = coalesce(chimpsync.key_group(api_key), a.key_group),
        encrypted_for    = coalesce(sealed_for, a.encrypted_for),
        state            = case when a.enabled then 'active' else 'disabled' end,
        state_reason     = null,
        state_changed_at = case when a.state = 'needs_attention' then now() else a.state_changed_at end,
        paused_until     = null,
        updated_at       = now()
    where a.account = account;
    if not found then
        raise exception 'no account %', account using errcode = 'P0002';
    end if;
end
$$;

-- The "Mailchimp Sync" switch. Switched off, nothing is sent and the queue keeps its rows;
-- switched on, what changed meanwhile is sent once (the queue kept only each customer's latest).
create function chimpsync.set_account_enabled(account text, enabled boolean)
returns void
language plpgsql as $$
#variable_conflict use_variable
begin
    update chimpsync.accounts a set
        enabled          = enabled,
        state            = case when not enabled then 'disabled'
                                when a.state = 'disabled' then 'active' else a.state end,
        state_reason     = case when not enabled then null else a.state_reason end,
        state_changed_at = case when a.enabled is distinct from enabled then now() else a.state_changed_at end,
        updated_at       = now()
    where a.account = account;
    if not found then
        raise exception 'no account %', account using errcode = 'P0002';
    end if;
end
$$;

create function chimpsync.enable_account(account text) returns void
language sql as $$ select chimpsync.set_account_enabled(account, true) $$;

create function chimpsync.disable_account(account text) returns void
language sql as $$ select chimpsync.set_account_enabled(account, false) $$;

-- Forgets an account: its queue rows, synced state and webhook events. Its audience in Mailchimp
-- is left alone.
create function chimpsync.remove_account(account text)
returns void
language plpgsql as $$
#variable_conflict use_variable
begin
    delete from chimpsync.accounts a where a.account = account;
    if not found then
        raise exception 'no account %', account using errcode = 'P0002';
    end if;
    delete from chimpsync.sync_queue q where q.account = account;
    delete from chimpsync.synced_contacts s where s.account = account;
    delete from chimpsync.inbound_events e where e.account = account;
end
$$;

-- Sync Contacts: asks the worker to queue every customer of the account.
create function chimpsync.sync_contacts(account text)
returns void
language plpgsql as $$
#variable_conflict use_variable
begin
    update chimpsync.accounts a set sync_requested_at = now(), updated_at = now() where a.account = account;
    if not found then
        raise exception 'no account %', account using errcode = 'P0002';
    end if;
end
$$;

comment on function chimpsync.connect_account(text, text, text, boolean, boolean) is 'Connects an account (or replaces its audience and key): account, audience_id, api_key, enabled (default true), sync_contacts (default false: true queues every customer of the account).';
comment on function chimpsync.update_account(text, text, text) is 'Changes an account''s audience_id or api_key (null = unchanged); ends needs_attention.';
comment on function chimpsync.enable_account(text) is 'Switches an account''s sync on: what changed while it was off is sent.';
comment on function chimpsync.disable_account(text) is 'Switches an account''s sync off: nothing is sent, its queue keeps its rows.';
comment on function chimpsync.remove_account(text) is 'Forgets an account, its queue rows, synced state and webhook events; its audience is left alone.';
comment on function chimpsync.sync_contacts(text) is 'Sync Contacts: the worker queues every customer of the account.';

-- Each account at a glance, and the accounts that customers name but chimpsync does not serve
-- (state 'unknown': their rows wait, unsent).
create view chimpsync.account_summary as
with queued as (
    select q.account,
           count(*) filter (where q.parked_at is null and (q.lease_expires_at is null or q.lease_expires_at <= now()) and q.attempts = 0) as pending,
           count(*) filter (where q.parked_at is null and q.lease_expires_at > now())                                              as in_flight,
           count(*) filter (where q.parked_at is null and (q.lease_expires_at is null or q.lease_expires_at <= now()) and q.attempts > 0) as retrying,
           count(*) filter (where q.parked_at is not null)                                                                       as parked,
           count(*) filter (where q.held_at is not null and q.released_at is null)                                               as held
    from chimpsync.sync_queue q
    where q.account <> ''
    group by q.account
)
select coalesce(a.account, q.account)                     as account,
       coalesce(a.state, 'unknown')                        as state,
       a.state_reason,
       a.enabled,
       a.audience_id,
       a.api_key_last4,
       coalesce(q.pending, 0)                              as pending,
       coalesce(q.in_flight, 0)                            as in_flight,
       coalesce(q.retrying, 0)                             as retrying,
       coalesce(q.parked, 0)                               as parked,
       coalesce(q.held, 0)                                 as held,
       a.last_synced_at,
       a.paused_until,
       a.sync_requested_at,
       a.created_at,
       a.updated_at
from chimpsync.accounts a
full join queued q on q.account = a.account;

comment on view chimpsync.account_summary is 'Each account''s state and queue (pending, in flight, retrying, parked, held) and last sync; state ''unknown'' for accounts that customers name but chimpsync.accounts does not hold.';
