//! Every SQL text chimpsync runs, loaded from `sql/` in this one place. Runtime code refers to
//! these constants; nothing else in the workspace writes SQL.

macro_rules! sql_files {
    ($dir:literal: $($name:ident => $file:literal),* $(,)?) => {
        $(
            #[doc = concat!("`sql/", $dir, "/", $file, "`")]
            pub const $name: &str = include_str!(concat!("../../../sql/", $dir, "/", $file));
        )*
    };
}

/// Named runtime queries (`sql/queries`), one statement each.
pub mod queries {
    sql_files!("queries":
        ACCOUNT_EVENTS_SINCE => "account_events_since.sql",
        ACCOUNT_INDEXES => "account_indexes.sql",
        ACCOUNT_NEEDS_ATTENTION => "account_needs_attention.sql",
        ACCOUNT_TARGET => "account_target.sql",
        ACCOUNT_SUMMARY => "account_summary.sql",
        ACCOUNTS_BY_STATE => "accounts_by_state.sql",
        ACCOUNT_EVENTS => "account_events.sql",
        ACCOUNT_WEBHOOK => "account_webhook.sql",
        ACCOUNTS_INSTALLED => "accounts_installed.sql",
        ACK_BATCH => "ack_batch.sql",
        ACQUIRE_SLOT => "acquire_slot.sql",
        ALLOW_DDL => "allow_ddl.sql",
        APPLIED_MIGRATIONS => "applied_migrations.sql",
        BOOTSTRAP => "bootstrap.sql",
        CLAIM_BATCH => "claim_batch.sql",
        CLAIM_DUE => "claim_due.sql",
        CLAIM_DUE_ACCOUNTS => "claim_due_accounts.sql",
        CLAIM_INBOUND_EVENT => "claim_inbound_event.sql",
        CLAIM_PICK_ACCOUNT => "claim_pick_account.sql",
        CLAIM_TOUCH_ACCOUNTS => "claim_touch_accounts.sql",
        CONNECT_ACCOUNT => "connect_account.sql",
        COUNT_SEALED_FOR_OTHERS => "count_sealed_for_others.sql",
        CREATE_PGCRYPTO => "create_pgcrypto.sql",
        DATABASE_NOW => "database_now.sql",
        DDL_GUARD_INSTALLED => "ddl_guard_installed.sql",
        DISABLE_ACCOUNT => "disable_account.sql",
        DRIFT => "drift.sql",
        DROP_DDL_GUARD => "drop_ddl_guard.sql",
        DROP_SCHEMA => "drop_schema.sql",
        DUE_INBOUND_EVENTS => "due_inbound_events.sql",
        ENABLE_ACCOUNT => "enable_account.sql",
        FINISH_INBOUND_EVENT => "finish_inbound_event.sql",
        FORGET_SYNCED_ADDRESSES => "forget_synced_addresses.sql",
        INSTALL_DDL_GUARD => "install_ddl_guard.sql",
        INSTALLATION => "installation.sql",
        INSTALLED_MAPPING => "installed_mapping.sql",
        INSTALLED_TABLE => "installed_table.sql",
        INSTALLED_TRIGGERS => "installed_triggers.sql",
        KEY_ENCRYPTION => "key_encryption.sql",
        LAST_RECONCILE => "last_reconcile.sql",
        LOCK_HOLDERS => "lock_holders.sql",
        MARK_INBOUND_ORIGIN => "mark_inbound_origin.sql",
        MIGRATION_LOCK => "migration_lock.sql",
        PARK_BATCH => "park_batch.sql",
        PAUSE_KEY_GROUP => "pause_key_group.sql",
        PRUNE_INBOUND_EVENTS => "prune_inbound_events.sql",
        QUEUE_ROWS_EXIST => "queue_rows_exist.sql",
        QUEUE_SUMMARY => "queue_summary.sql",
        RECORD_DRIFT_CHECK => "record_drift_check.sql",
        RECORD_INBOUND_EVENT => "record_inbound_event.sql",
        RECORD_INSTALLATION => "record_installation.sql",
        RECORD_KEY_ENCRYPTION => "record_key_encryption.sql",
        RECORD_MAPPING => "record_mapping.sql",
        RECORD_MIGRATION => "record_migration.sql",
        RECORD_RECONCILE => "record_reconcile.sql",
        RELEASE_BATCH => "release_batch.sql",
        RELEASE_HELD_REMOVALS => "release_held_removals.sql",
        RELEASE_SLOT => "release_slot.sql",
        REMOVE_ACCOUNT => "remove_account.sql",
        RENAME_SYNCED_CONTACT => "rename_synced_contact.sql",
        RESCHEDULE_BATCH => "reschedule_batch.sql",
        RESEAL_API_KEY => "reseal_api_key.sql",
        RETRY_PARKED => "retry_parked.sql",
        SCHEMA_EXISTS => "schema_exists.sql",
        SEALED_API_KEY => "sealed_api_key.sql",
        SEALED_API_KEYS => "sealed_api_keys.sql",
        SLOTS_IN_USE => "slots_in_use.sql",
        SYNC_REQUESTS => "sync_requests.sql",
        SYNC_REQUEST_DONE => "sync_request_done.sql",
        SYNC_CONTACTS => "sync_contacts.sql",
        TABLE_COLUMNS => "table_columns.sql",
        UNPARK_ADDRESS => "unpark_address.sql",
        UPDATE_ACCOUNT => "update_account.sql",
    );

    /// The queries that run against a migrated schema with fixed text, for the test that
    /// prepares each of them (a typo fails `cargo test`, not production).
    pub const PREPARED: &[(&str, &str)] = &[
        ("account_events_since", ACCOUNT_EVENTS_SINCE),
        ("account_needs_attention", ACCOUNT_NEEDS_ATTENTION),
        ("account_target", ACCOUNT_TARGET),
        ("account_summary", ACCOUNT_SUMMARY),
        ("accounts_by_state", ACCOUNTS_BY_STATE),
        ("account_events", ACCOUNT_EVENTS),
        ("account_webhook", ACCOUNT_WEBHOOK),
        ("accounts_installed", ACCOUNTS_INSTALLED),
        ("acquire_slot", ACQUIRE_SLOT),
        ("applied_migrations", APPLIED_MIGRATIONS),
        ("claim_inbound_event", CLAIM_INBOUND_EVENT),
        ("connect_account", CONNECT_ACCOUNT),
        ("count_sealed_for_others", COUNT_SEALED_FOR_OTHERS),
        ("database_now", DATABASE_NOW),
        ("ddl_guard_installed", DDL_GUARD_INSTALLED),
        ("disable_account", DISABLE_ACCOUNT),
        ("drift", DRIFT),
        ("drop_schema", DROP_SCHEMA),
        ("due_inbound_events", DUE_INBOUND_EVENTS),
        ("enable_account", ENABLE_ACCOUNT),
        ("finish_inbound_event", FINISH_INBOUND_EVENT),
        ("forget_synced_addresses", FORGET_SYNCED_ADDRESSES),
        ("installation", INSTALLATION),
        ("installed_mapping", INSTALLED_MAPPING),
        ("installed_table", INSTALLED_TABLE),
        ("installed_triggers", INSTALLED_TRIGGERS),
        ("key_encryption", KEY_ENCRYPTION),
        ("last_reconcile", LAST_RECONCILE),
        ("lock_holders", LOCK_HOLDERS),
        ("mark_inbound_origin", MARK_INBOUND_ORIGIN),
        ("migration_lock", MIGRATION_LOCK),
        ("park_batch", PARK_BATCH),
        ("pause_key_group", PAUSE_KEY_GROUP),
        ("prune_inbound_events", PRUNE_INBOUND_EVENTS),
        ("queue_rows_exist", QUEUE_ROWS_EXIST),
        ("queue_summary", QUEUE_SUMMARY),
        ("record_drift_check", RECORD_DRIFT_CHECK),
        ("record_inbound_event", RECORD_INBOUND_EVENT),
        ("record_installation", RECORD_INSTALLATION),
        ("record_key_encryption", RECORD_KEY_ENCRYPTION),
        ("record_mapping", RECORD_MAPPING),
        ("record_migration", RECORD_MIGRATION),
        ("record_reconcile", RECORD_RECONCILE),
        ("release_batch", RELEASE_BATCH),
        ("release_held_removals", RELEASE_HELD_REMOVALS),
        ("release_slot", RELEASE_SLOT),
        ("remove_account", REMOVE_ACCOUNT),
        ("rename_synced_contact", RENAME_SYNCED_CONTACT),
        ("reschedule_batch", RESCHEDULE_BATCH),
        ("reseal_api_key", RESEAL_API_KEY),
        ("retry_parked", RETRY_PARKED),
        ("schema_exists", SCHEMA_EXISTS),
        ("sealed_api_key", SEALED_API_KEY),
        ("sealed_api_keys", SEALED_API_KEYS),
        ("slots_in_use", SLOTS_IN_USE),
        ("sync_requests", SYNC_REQUESTS),
        ("sync_request_done", SYNC_REQUEST_DONE),
        ("sync_contacts", SYNC_CONTACTS),
        ("table_columns", TABLE_COLUMNS),
        ("unpark_address", UNPARK_ADDRESS),
        ("update_account", UPDATE_ACCOUNT),
    ];
}

/// The claim statement (`claim_batch.sql`): of the one account (`multi = false`), or of the
/// accounts [`queries::CLAIM_PICK_ACCOUNT`] picks first. Rendered once.
pub fn claim_batch(multi: bool) -> &'static str {
    static SINGLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| render_claim(false));
    static MULTI: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| render_claim(true));
    if multi {
        &MULTI
    } else {
        &SINGLE
    }
}

/// The acknowledgement statement (`ack_batch.sql`) of one account (`multi = false`: the synced
/// contacts are keyed by customer) or of many (by account and customer).
pub fn ack_batch(multi: bool) -> &'static str {
    static SINGLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        templates::fill(queries::ACK_BATCH, &[("conflict", conflict_key(false))])
    });
    static MULTI: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        templates::fill(queries::ACK_BATCH, &[("conflict", conflict_key(true))])
    });
    if multi {
        &MULTI
    } else {
        &SINGLE
    }
}

/// The unique key of a queue row and of a synced contact: the customer, or with many accounts
/// the account and the customer (`account_indexes.sql`).
pub fn conflict_key(multi: bool) -> &'static str {
    if multi {
        "account, customer_key"
    } else {
        "customer_key"
    }
}

fn render_claim(multi: bool) -> String {
    // Fragments without their comments: the claim's own header must stay within the first 1 KiB
    // that pg_stat_activity shows.
    let part = |text: &str| -> String {
        text.lines()
            .skip_while(|l| l.starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .trim_end()
            .to_string()
    };
    let pick = format!("{}\n", part(queries::CLAIM_PICK_ACCOUNT));
    let values: [(&str, String); 5] = if multi {
        [
            ("with", "with recursive ".into()),
            ("pick", pick),
            (
                "q_in_account",
                "\n      and q.account in (select p.account from picked p)".into(),
            ),
            ("due", part(queries::CLAIM_DUE_ACCOUNTS)),
            ("touch", part(queries::CLAIM_TOUCH_ACCOUNTS)),
        ]
    } else {
        [
            ("with", "with ".into()),
            ("pick", String::new()),
            ("q_in_account", String::new()),
            ("due", part(queries::CLAIM_DUE)),
            ("touch", String::new()),
        ]
    };
    let values: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    templates::fill(queries::CLAIM_BATCH, &values)
}

/// Templates filled from the mapping (`sql/templates`); identifiers are quoted before they are
/// substituted.
pub mod templates {
    sql_files!("templates":
        BACKFILL_CHUNK => "backfill_chunk.sql",
        CHANGES_DELETE => "changes_delete.sql",
        CHANGES_GONE => "changes_gone.sql",
        CHANGES_INSERT => "changes_insert.sql",
        CHANGES_REQUEUE => "changes_requeue.sql",
        CHANGES_UPDATE => "changes_update.sql",
        COUNT_ROWS => "count_rows.sql",
        INTEREST_VALUES => "interest_values.sql",
        CUSTOMERS_AT => "customers_at.sql",
        DROP_ROLE => "drop_role.sql",
        DRIFT_REPLAY => "drift_replay.sql",
        DROP_TRIGGERS => "drop_triggers.sql",
        ENQUEUE => "enqueue.sql",
        FILTER_CHECK => "filter_check.sql",
        HELD_CHANGES => "held_changes.sql",
        INBOUND_APPLIED => "inbound_applied.sql",
        LOCK_TIMEOUT => "lock_timeout.sql",
        PROJECTION => "projection.sql",
        RECONCILE_CUSTOMERS => "reconcile_customers.sql",
        RECONCILE_REQUEUE => "reconcile_requeue.sql",
        RECONCILE_WANTED => "reconcile_wanted.sql",
        ROW_FUNCTION => "row_function.sql",
        ROW_TRIGGER => "row_trigger.sql",
        STATEMENT_FUNCTION => "statement_function.sql",
        STATEMENT_TRIGGER => "statement_trigger.sql",
        CHANGES_TRUNCATE => "changes_truncate.sql",
        TRUNCATE_FUNCTION => "truncate_function.sql",
        TRUNCATE_TRIGGER => "truncate_trigger.sql",
        TABLE_FITS => "table_fits.sql",
        WORKER_ROLE => "worker_role.sql",
    );

    /// Fills `{{name}}` placeholders. Every placeholder must be given exactly once.
    pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
        let mut out = template.to_string();
        for (name, value) in values {
            out = out.replace(&format!("{{{{{name}}}}}"), value);
        }
        debug_assert!(!out.contains("{{"), "unfilled placeholder in:\n{out}");
        out
    }
}

/// Forward-only numbered migrations (`sql/migrations`).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "queue",
        include_str!("../../../sql/migrations/0001_queue.sql"),
    ),
    (
        2,
        "inbound",
        include_str!("../../../sql/migrations/0002_inbound.sql"),
    ),
    (
        3,
        "maybe_applied",
        include_str!("../../../sql/migrations/0003_maybe_applied.sql"),
    ),
    (
        4,
        "installed_triggers",
        include_str!("../../../sql/migrations/0004_installed_triggers.sql"),
    ),
    (
        5,
        "drift",
        include_str!("../../../sql/migrations/0005_drift.sql"),
    ),
    (
        6,
        "held_removals",
        include_str!("../../../sql/migrations/0006_held_removals.sql"),
    ),
    (
        7,
        "done_steps",
        include_str!("../../../sql/migrations/0007_done_steps.sql"),
    ),
    (
        8,
        "installed_mapping",
        include_str!("../../../sql/migrations/0008_installed_mapping.sql"),
    ),
    (
        9,
        "accounts",
        include_str!("../../../sql/migrations/0009_accounts.sql"),
    ),
    (
        10,
        "payload_groups",
        include_str!("../../../sql/migrations/0010_payload_groups.sql"),
    ),
];
