//! `chimpsync setup`: the schema and the change triggers, the worker's role, the uninstall, and
//! with `--mailchimp` the merge fields, interest categories and interests the mapping needs.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use mailchimp::NewMergeField;
use store::accounts::{KeyEncryption, KeyInstall};
use store::{DdlGuard, TriggerShape};

use crate::cli::SetupArgs;
use crate::config::{Config, Timeouts};
use crate::exit::Failure;
use crate::{db, keys};

use super::groups;

/// Runs `setup` as its arguments say.
pub async fn run(config: &Config, args: SetupArgs) -> Result<()> {
    if args.uninstall {
        if !args.yes && !args.print_sql {
            bail!(Failure::Usage.error(
                "setup --uninstall drops schema chimpsync with the queue (changes not yet synced \
                 are lost), the record of what Mailchimp holds and the change triggers (and the \
                 role named by --worker-role); nothing was changed. Add --yes to do it \
                 (--print-sql shows the statements first)"
            ));
        }
        return uninstall(config, args.print_sql, args.worker_role.as_deref()).await;
    }
    let shape = if args.trigger_shape == "row" {
        TriggerShape::Row
    } else {
        TriggerShape::Statement
    };
    install(config, args.print_sql, shape, !args.no_ddl_guard).await?;
    if let Some(role) = args.worker_role.as_deref() {
        worker_role(config, args.print_sql, role).await?;
    }
    if args.mailchimp {
        merge_fields(config).await?;
    }
    Ok(())
}

async fn install(
    config: &Config,
    print_sql: bool,
    shape: TriggerShape,
    ddl_guard: bool,
) -> Result<()> {
    let mapping = config.mapping()?;
    let mut client = db::connect(config).await?;
    if print_sql {
        let generated = store::Generated::for_mapping(&client, &mapping).await?;
        print!("{}", store::setup_sql(&generated, shape));
        return Ok(());
    }
    // A multi-account mapping installs the public half of CHIMPSYNC_SECRET_KEY, which account
    // API keys are encrypted for.
    let secret = if mapping.multi_account() {
        Some(config.secret_key()?)
    } else {
        None
    };
    let public = secret
        .as_ref()
        .map(|k| (k.public_key_armored(), k.fingerprint()));
    let options = store::SetupOptions {
        ddl_guard,
        key_encryption: public
            .as_ref()
            .map(|(public_key, fingerprint)| KeyEncryption {
                public_key,
                fingerprint,
            }),
        ..store::SetupOptions::default()
    };
    let report = store::setup_with(&mut client, &mapping, shape, options).await?;
    if let Some(old) = &report.removed_from {
        println!("removed the change triggers from {old}");
    }
    if report.applied_migrations.is_empty() {
        println!("schema chimpsync is up to date");
    } else {
        println!("applied migrations {:?}", report.applied_migrations);
    }
    if report.triggers_installed {
        println!(
            "change triggers installed on {} ({} level)",
            report.table,
            shape.as_str()
        );
    } else {
        println!(
            "change triggers on {} already match the mapping; left as they are",
            report.table
        );
    }
    println!("capture guard: installed (in the change triggers)");
    match &report.ddl_guard {
        DdlGuard::Installed | DdlGuard::AlreadyInstalled => println!(
            "DDL guard: installed (event triggers chimpsync_ddl_guard, chimpsync_drop_guard)"
        ),
        DdlGuard::Removed => {
            println!("DDL guard: removed (--no-ddl-guard); the capture guard catches drift")
        }
        DdlGuard::NotInstalled(why) => println!(
            "DDL guard: not installed: {why}; drift will be caught by the capture guard instead"
        ),
    }
    match (&report.key_encryption, &public) {
        (Some(KeyInstall::Installed), Some((_, fingerprint))) => {
            println!("key-encryption key {fingerprint} installed (account API keys are encrypted for it)")
        }
        (Some(KeyInstall::Replaced), Some((_, fingerprint))) => println!(
            "key-encryption key {fingerprint} installed, replacing one no account was encrypted for"
        ),
        (Some(KeyInstall::AlreadyInstalled), Some((_, fingerprint))) => {
            println!("key-encryption key {fingerprint} is installed")
        }
        _ => {}
    }
    if let Some(replayed) = &report.replayed {
        println!(
            "queued {} customers again whose changes were held while the table did not fit the mapping ({} held rows)",
            replayed.queued, replayed.held
        );
    }
    Ok(())
}

async fn worker_role(config: &Config, print_sql: bool, role: &str) -> Result<()> {
    if print_sql {
        print!("{}", store::admin::worker_role_sql(role)?);
        return Ok(());
    }
    let mut client = db::connect(config).await?;
    store::admin::grant_worker_role(&mut client, role).await?;
    println!("role {role} may run the worker (set its password: alter role ... password '...')");
    Ok(())
}

async fn uninstall(config: &Config, print_sql: bool, role: Option<&str>) -> Result<()> {
    if print_sql {
        print!("{}", store::admin::uninstall_sql(role)?);
        return Ok(());
    }
    let mut client = db::connect(config).await?;
    let report = store::admin::uninstall(&mut client, role).await?;
    if let Some(table) = &report.triggers_removed_from {
        println!("removed the change triggers from {table}");
    }
    if report.schema_dropped {
        println!("dropped schema chimpsync");
    } else {
        println!("schema chimpsync was not installed");
    }
    if let Some(role) = &report.role_dropped {
        println!("dropped role {role} (if it existed)");
    }
    Ok(())
}

/// The Mailchimp merge-field type that fits a column's SQL type: numbers for numeric columns,
/// dates for `date` columns, text for everything else (booleans and timestamps are sent as text).
fn merge_field_type(sql_type: &str) -> &'static str {
    let lower = sql_type.to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or_default().trim();
    match base {
        "smallint" | "integer" | "bigint" | "numeric" | "decimal" | "real" | "double precision" => {
            "number"
        }
        "date" => "date",
        _ => "text",
    }
}

/// A display name for a column: `first_name` → `First Name`.
fn display_name(column: &str) -> String {
    column
        .split(['_', ' ', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(c) => c.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A merge field the mapping needs: its tag, column, the column's SQL type and the field type
/// that fits it.
struct WantedField<'a> {
    tag: &'a str,
    column: &'a str,
    sql_type: String,
    wanted: &'static str,
}

/// `setup --mailchimp`: creates the merge fields of `[merge_fields]` the audience lacks, typed
/// from the columns, and reports each; with many accounts, in every account's audience.
async fn merge_fields(config: &Config) -> Result<()> {
    let mapping = config.mapping()?;
    let queue = db::queue(config, 2).await?;
    let db = queue.pool().get().await?;
    let table = mapping.table().map_err(|e| anyhow!("source.table: {e}"))?;
    let columns = store::generated::table_columns(&**db, &table).await?;
    let mut fields = Vec::new();
    for (tag, column) in &mapping.merge_fields {
        let Some(sql_type) = columns
            .iter()
            .find(|c| &c.name == column)
            .map(|c| c.sql_type.clone())
        else {
            bail!(Failure::Config.error(format!(
                "merge_fields.{tag}: column {column:?} does not exist in table {table}"
            )));
        };
        let wanted = merge_field_type(&sql_type);
        fields.push(WantedField {
            tag,
            column,
            sql_type,
            wanted,
        });
    }
    let known = interest_values(&db, &mapping).await?;
    let wanted = Wanted {
        mapping: &mapping,
        fields: &fields,
        known: &known,
    };
    if mapping.multi_account() {
        return merge_fields_of_accounts(config, queue.pool(), &db, &wanted).await;
    }
    let audience = config.audience_id(&mapping)?;
    let client = config.client(&Timeouts::default())?;
    prepare_audience(&client, &audience, &wanted, "").await?;
    Ok(())
}

/// What `setup --mailchimp` makes an audience hold.
struct Wanted<'a> {
    mapping: &'a store::Mapping,
    fields: &'a [WantedField<'a>],
    /// The values of each `column` interest category (title → values) in the table now.
    known: &'a BTreeMap<String, Vec<String>>,
}

/// The table's values of each `[[interests]]` column category, each an interest to create.
async fn interest_values(
    db: &tokio_postgres::Client,
    mapping: &store::Mapping,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut known = BTreeMap::new();
    if mapping.interests.is_empty() {
        return Ok(known);
    }
    let generated = store::generated::Generated::for_mapping(db, mapping)
        .await
        .map_err(|e| Failure::Config.error(e.to_string()))?;
    for entry in &mapping.interests {
        let Some(column) = &entry.column else {
            continue;
        };
        let sql = generated.interest_values(column, groups::KNOWN_VALUES + 1);
        let mut values: Vec<String> = db
            .query(&sql, &[])
            .await
            .with_context(|| format!("reading the values of column {column}"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if values.len() > groups::KNOWN_VALUES {
            values.truncate(groups::KNOWN_VALUES);
            println!(
                "{}: column {column} has more than {} values; the first {} are created now, \
                 the others when a customer has them (Mailchimp allows {} interests per audience)",
                entry.key(),
                groups::KNOWN_VALUES,
                groups::KNOWN_VALUES,
                groups::KNOWN_VALUES
            );
        }
        known.insert(entry.category.clone(), values);
    }
    Ok(known)
}

/// Creates the fields in every connected account's audience with the account's key. An account
/// that fails (a refused key, no audience) is reported and the others go on; the command fails
/// at the end if any did.
async fn merge_fields_of_accounts(
    config: &Config,
    pool: &store::Pool,
    db: &tokio_postgres::Client,
    wanted: &Wanted<'_>,
) -> Result<()> {
    let connected: Vec<_> = store::accounts::list(db)
        .await
        .context("reading chimpsync.account_summary")?
        .into_iter()
        .filter(|a| a.state != "unknown")
        .collect();
    if connected.is_empty() {
        println!("no accounts connected: no merge fields created (chimpsync account add ACCOUNT --audience ID)");
        return Ok(());
    }
    let mut failed = Vec::new();
    for a in &connected {
        let prefix = format!("account {}: ", a.account);
        let done = async {
            let account = keys::open_account(config, pool, &a.account).await?;
            prepare_audience(&account.client, account.audience()?, wanted, &prefix).await
        }
        .await;
        if let Err(e) = done {
            println!("{prefix}failed: {e:#}");
            failed.push(a.account.as_str());
        }
    }
    println!(
        "merge fields: {} accounts done, {} failed",
        connected.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!(Failure::Partial.error(format!(
            "the merge fields of account(s) {} could not be created (see above)",
            failed.join(", ")
        )));
    }
    Ok(())
}

/// Creates the merge fields, interest categories and interests the audience lacks and checks
/// its marketing permissions, reporting each, each line starting with `prefix`.
async fn prepare_audience(
    client: &mailchimp::Client,
    audience: &str,
    wanted: &Wanted<'_>,
    prefix: &str,
) -> Result<()> {
    create_merge_fields(client, audience, wanted.fields, prefix).await?;
    groups::create(client, audience, wanted.mapping, wanted.known, prefix).await?;
    if !wanted.mapping.marketing_permissions.is_empty() {
        let held = client
            .get_audience(audience)
            .await
            .with_context(|| format!("reading audience {audience}"))?;
        match groups::permissions(client, &held, wanted.mapping).await {
            Some(Ok(line)) => println!("{prefix}{line}"),
            Some(Err(problem)) => bail!(Failure::Config.error(problem)),
            None => {}
        }
    }
    Ok(())
}

/// Creates the `fields` the audience lacks and reports each, each line starting with `prefix`.
async fn create_merge_fields(
    client: &mailchimp::Client,
    audience: &str,
    fields: &[WantedField<'_>],
    prefix: &str,
) -> Result<()> {
    let existing = client
        .merge_fields(audience)
        .await
        .with_context(|| format!("reading the merge fields of audience {audience}"))?;
    let (mut created, mut present) = (0, 0);
    for WantedField {
        tag,
        column,
        sql_type,
        wanted,
    } in fields
    {
        if let Some(field) = existing.iter().find(|f| f.tag == *tag) {
            present += 1;
            println!("{prefix}merge field {tag} exists ({})", field.r#type);
            if field.r#type != *wanted && *wanted != "text" {
                println!(
                    "{prefix}  note: column {column} is {sql_type}; Mailchimp keeps it as {}, a {wanted} field would fit",
                    field.r#type
                );
            }
            continue;
        }
        let field = client
            .create_merge_field(
                audience,
                &NewMergeField {
                    tag: tag.to_string(),
                    name: display_name(column),
                    r#type: wanted.to_string(),
                },
            )
            .await
            .with_context(|| format!("creating merge field {tag}"))?;
        created += 1;
        println!(
            "{prefix}created merge field {} ({}) for column {column} ({sql_type})",
            field.tag, field.r#type
        );
    }
    println!(
        "{prefix}merge fields of audience {audience}: {created} created, {present} already there"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_types_pick_the_merge_field_type() {
        for (sql, want) in [
            ("integer", "number"),
            ("numeric(10,2)", "number"),
            ("double precision", "number"),
            ("date", "date"),
            ("timestamp with time zone", "text"),
            ("boolean", "text"),
            ("character varying(200)", "text"),
        ] {
            assert_eq!(merge_field_type(sql), want, "{sql}");
        }
        assert_eq!(display_name("first_name"), "First Name");
        assert_eq!(display_name("ltv"), "Ltv");
    }
}
