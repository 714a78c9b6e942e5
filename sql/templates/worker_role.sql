-- The worker's least-privilege role: exactly what `chimpsync run` needs, nothing on the customer
-- table. {{role}} is the quoted role name, {{role_literal}} the same name as a string literal.
-- The role is created with LOGIN and without a password: the DBA sets one (or a certificate or
-- peer mapping) for it. Re-running resets its privileges in schema chimpsync to this list.
do $chimpsync$
begin
    if not exists (select 1 from pg_catalog.pg_roles where rolname = {{role_literal}}) then
        create role {{role}} login;
    end if;
end
$chimpsync$;
revoke all on all tables in schema chimpsync from {{role}};
revoke all on all sequences in schema chimpsync from {{role}};
revoke all on schema chimpsync from {{role}};
grant usage on schema chimpsync to {{role}};
-- claim (select ... for update, update), ack (delete), park / reschedule / release (update).
-- No insert: the change triggers insert as security definer.
grant select, update, delete on chimpsync.sync_queue to {{role}};
-- What Mailchimp holds per customer: written on every acknowledgement.
grant select, insert, update, delete on chimpsync.synced_contacts to {{role}};
-- /readyz, /metrics and `status`.
grant select on chimpsync.queue_summary to {{role}};
-- The webhook receiver of `chimpsync run` (CHIMPSYNC_WEBHOOK_SECRET): stores events and marks
-- them applied. Its [inbound] statements change the customer table: with webhooks on, the DBA
-- also grants the role select on that table and update on the columns those statements set.
-- Applied events past their retention are deleted by the worker.
grant select, insert, update, delete on chimpsync.inbound_events to {{role}};
-- The schema handshake of `run`: the migrations applied, and the mapping `setup` installed
-- (through a function: the role may not read chimpsync.installation).
grant select on chimpsync.schema_migrations to {{role}};
grant execute on function chimpsync.installed_mapping() to {{role}};
-- Multi-account mode: the accounts and their encrypted API keys (only the worker's
-- CHIMPSYNC_SECRET_KEY decrypts them), and the state the worker keeps of each account. Their
-- keys, audiences and switches change through the chimpsync.*_account functions, not the worker.
grant select on chimpsync.accounts, chimpsync.key_encryption, chimpsync.account_summary,
    chimpsync.account_events to {{role}};
grant update (state, state_reason, state_changed_at, paused_until, last_synced_at, last_claimed_at,
    sync_requested_at, updated_at) on chimpsync.accounts to {{role}};
-- A change of an account's state is logged by a trigger that runs as the worker.
grant insert on chimpsync.account_events to {{role}};
