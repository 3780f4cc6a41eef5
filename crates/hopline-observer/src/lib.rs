//! observer: reacts to changes in a PostgreSQL database.
//!
//! A trigger on each watched table writes every INSERT, UPDATE and DELETE into a change log in
//! the writer's own transaction ([`capture`]); the `postgres` source reads it in an order that
//! never skips a change that committed late ([`source`]); `match` finds the observers each
//! change concerns (table, operations, [`condition`]); `act` runs their actions, webhooks and log
//! lines, with retries ([`action`], [`nodes::act`]); the `checkpoint` sink files what gave up in
//! the dead-letter queue and saves the observer's progress in the same transaction
//! ([`sink`], [`dlq`]).
//!
//! ```yaml
//! app: observer
//! scenario: orders-paid
//! source:
//!   kind: postgres
//!   params:
//!     database: ${DATABASE_URL}        # a libpq URL; `${NAME}` reads the environment
//!     consumer: orders-paid            # the checkpoint's name; the scenario unless given
//!     poll_interval: 500ms             # the default: reads without a notification this often
//! sink:
//!   kind: checkpoint
//! nodes:
//!   - kind: match
//!     params:
//!       observers:
//!         - name: order_paid
//!           table: orders              # public.orders; or schema.table
//!           ops: [update]              # insert, update, delete; all unless given
//!           condition: "changed_to(status, 'paid')"
//!           actions:
//!             - webhook:
//!                 url: ${WEBHOOK_URL}
//!                 secret: ${WEBHOOK_SECRET}     # optional: signs with HMAC-SHA256
//!                 timeout: 2s
//!                 retry: { attempts: 4, backoff: 100ms, max_backoff: 1s, give_up_after: 5s }
//!             - log:
//!                 message: "order {key.id} paid: {after.total}"
//!   - kind: act
//!     params:
//!       concurrency: 64               # the default: webhook requests in flight
//! ```
//!
//! The observer runs under `profile: memory` (one process). `docs/observer.md` walks through
//! it; ARCHITECTURE.md says what is guaranteed.

pub mod action;
pub mod capture;
pub mod condition;
pub mod config;
pub mod db;
pub mod dlq;
pub mod http;
pub mod image;
pub mod message;
pub mod nodes;
pub mod sink;
pub mod source;
pub mod template;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use hopline_model::{
    ConfigError, CorrelationId, EndKinds, Ends, PipelineConfig, Registry, Sink, SinkError, Source, SourceError,
};

pub use message::ObserverMsg;

use crate::config::{Name, Observer, SourceParams};
use crate::db::Database;
use crate::message::Position;

/// The app name configs use.
pub const APP: &str = "observer";

/// The source and sink kinds.
pub const SOURCE_KIND: &str = "postgres";
pub const SINK_KIND: &str = "checkpoint";

/// observer's node kinds.
pub fn registry() -> Registry<ObserverMsg> {
    let mut registry = Registry::new(APP);
    registry.register(nodes::matching::KIND).register(nodes::act::KIND);
    registry
}

/// The observer's ends: the `postgres` change source and the `checkpoint` sink, which share
/// how far the source has read while idle.
#[derive(Debug, Default)]
pub struct ObserverEnds {
    idle: Arc<source::Idle>,
}

/// The source's settings, checked.
struct Settings {
    database: Database,
    consumer: String,
    poll_interval: std::time::Duration,
}

fn settings(config: &PipelineConfig) -> Result<Settings, ConfigError> {
    let params: SourceParams = config.source.params.read()?;
    let database =
        Database::parse(params.database.value()).map_err(|m| config.source.params.error_at(&["database"], m))?;
    let consumer = params.consumer.unwrap_or_else(|| Name(config.scenario.clone())).0;
    Ok(Settings { database, consumer, poll_interval: params.poll_interval.0 })
}

/// A `match` node's params (for errors about them) and its observers.
type Observers<'a> = Vec<(&'a hopline_model::Params, Vec<Arc<Observer>>)>;

/// The observers of every `match` node.
fn observers(config: &PipelineConfig) -> Result<Observers<'_>, ConfigError> {
    config
        .nodes
        .iter()
        .filter(|n| n.kind == nodes::matching::KIND.name)
        .map(|n| Ok((&n.params, nodes::matching::observers(&n.params)?)))
        .collect()
}

impl Ends<ObserverMsg> for ObserverEnds {
    fn check(&self, config: &PipelineConfig) -> Result<EndKinds, ConfigError> {
        for (key, adapter, expected) in [("source", &config.source, SOURCE_KIND), ("sink", &config.sink, SINK_KIND)] {
            if adapter.kind != expected {
                return Err(ConfigError::at(
                    &config.origin,
                    &format!("{key}.kind"),
                    adapter.kind_pos,
                    format!("unknown {key} kind `{}` for app `{APP}`; expected {expected}", adapter.kind),
                ));
            }
        }
        settings(config)?;
        if !config.sink.params.tree().resolve().is_some_and(|r| r == hopline_model::config::tree::Resolved::Null) {
            return Err(config
                .sink
                .params
                .error_at(&[], "the checkpoint sink takes no params: it saves to the source's database"));
        }
        Ok(EndKinds { source_emits: &[ObserverMsg::CHANGE], sink_consumes: &[ObserverMsg::ACTED] })
    }

    fn open_source(
        &self,
        config: &PipelineConfig,
        _: &Path,
        _: &str,
        correlation_id: CorrelationId,
    ) -> Result<Box<dyn Source<ObserverMsg>>, SourceError> {
        let fail = |message: String| SourceError::App { kind: SOURCE_KIND.into(), message };
        let settings = settings(config).map_err(|e| fail(e.to_string()))?;
        let observers = observers(config).map_err(|e| fail(e.to_string()))?;
        let mut client = settings.database.connect().map_err(fail)?;
        let tables = prepare(&mut client, &observers).map_err(fail)?;
        let (instance, commit_timestamps, start) =
            start_position(&mut client, &settings.consumer).map_err(|e| fail(db::error_text(&e)))?;
        let setup = source::ReaderSetup {
            database: settings.database,
            client,
            consumer: settings.consumer,
            tables,
            start,
            batch_size: config.runtime.batch_size,
            poll_interval: settings.poll_interval,
            instance: instance.into(),
            commit_timestamps,
        };
        Ok(Box::new(source::ChangeSource::start(setup, Arc::clone(&self.idle), correlation_id)?))
    }

    fn create_sink(&self, config: &PipelineConfig, _: &Path, _: &str) -> Result<Box<dyn Sink<ObserverMsg>>, SinkError> {
        let fail = |message: String| SinkError::App { kind: SINK_KIND.into(), message };
        let settings = settings(config).map_err(|e| fail(e.to_string()))?;
        let client = settings.database.connect().map_err(fail)?;
        Ok(Box::new(sink::CheckpointSink::new(settings.database, client, settings.consumer, Arc::clone(&self.idle))))
    }
}

/// Creates the schema if needed, checks every observer's table (it exists, has a primary key,
/// has the columns its condition reads) and puts the capture triggers on those that lack them,
/// in one transaction. Returns the watched tables.
fn prepare(client: &mut postgres::Client, observers: &Observers<'_>) -> Result<Vec<config::TableName>, String> {
    let sql_error = |e: postgres::Error| db::error_text(&e);
    let mut tx = client.transaction().map_err(sql_error)?;
    tx.batch_execute(capture::SCHEMA_SQL)
        .map_err(|e| format!("cannot create the hopline schema: {}", db::error_text(&e)))?;
    let mut tables = BTreeSet::new();
    for (params, list) in observers {
        for (i, observer) in list.iter().enumerate() {
            let at = i.to_string();
            let qualified = format!(
                "{}.{}",
                capture::quote_ident(&observer.table.schema),
                capture::quote_ident(&observer.table.table)
            );
            let row = tx
                .query_one(
                    "SELECT to_regclass($1)::oid::bigint, EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
                    &[&qualified],
                )
                .map_err(sql_error)?;
            let oid: Option<i64> = row.get(0);
            let Some(oid) = oid else {
                return Err(params
                    .error_at(
                        &["observers", &at, "table"],
                        format!("observer `{}`: the table `{}` does not exist", observer.name, observer.table),
                    )
                    .to_string());
            };
            let has_key: bool = row.get(1);
            if !has_key {
                return Err(params
                    .error_at(
                        &["observers", &at, "table"],
                        format!(
                            "observer `{}`: the table `{}` has no primary key; changes are keyed by it",
                            observer.name, observer.table
                        ),
                    )
                    .to_string());
            }
            if let Some(condition) = &observer.condition {
                let columns: Vec<String> = tx
                    .query(
                        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                        &[&oid],
                    )
                    .map_err(sql_error)?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if let Some(unknown) = condition.columns().into_iter().find(|c| !columns.iter().any(|k| k == c)) {
                    return Err(params
                        .error_at(
                            &["observers", &at, "condition"],
                            format!(
                                "observer `{}`: the condition reads the column `{unknown}`, which the table `{}` does not have; its columns are {}",
                                observer.name,
                                observer.table,
                                columns.join(", ")
                            ),
                        )
                        .to_string());
                }
            }
            tables.insert(observer.table.clone());
        }
    }
    for table in &tables {
        tx.batch_execute(&capture::trigger_sql(table, false))
            .map_err(|e| format!("cannot put the capture trigger on `{table}`: {}", db::error_text(&e)))?;
    }
    tx.commit().map_err(sql_error)?;
    Ok(tables.into_iter().collect())
}

/// The database's instance id, whether it tracks commit timestamps, and where the consumer
/// resumes (its checkpoint, created at the start of the change log for a new consumer).
fn start_position(client: &mut postgres::Client, consumer: &str) -> Result<(String, bool, Position), postgres::Error> {
    let instance: String = client.query_one("SELECT instance FROM hopline.meta", &[])?.get(0);
    let tracks: String = client.query_one("SHOW track_commit_timestamp", &[])?.get(0);
    client.execute(
        "INSERT INTO hopline.checkpoint (consumer, window_lo, window_hi, last_seq) VALUES ($1, 0, 0, 0) \
         ON CONFLICT (consumer) DO NOTHING",
        &[&consumer],
    )?;
    let row = client
        .query_one("SELECT window_lo, window_hi, last_seq FROM hopline.checkpoint WHERE consumer = $1", &[&consumer])?;
    let start = Position { window_lo: row.get(0), window_hi: row.get(1), seq: row.get(2) };
    Ok((instance, tracks == "on", start))
}

/// The tables a config's observers watch, and its database: for `hopline observer migrate`.
pub fn watched(config: &PipelineConfig) -> Result<(Database, Vec<config::TableName>), ConfigError> {
    ObserverEnds::default().check(config)?;
    let settings = settings(config)?;
    let tables: BTreeSet<config::TableName> =
        observers(config)?.into_iter().flat_map(|(_, list)| list.into_iter().map(|o| o.table.clone())).collect();
    Ok((settings.database, tables.into_iter().collect()))
}

/// Applies the migration for `tables` (`hopline observer migrate`): the schema, and the capture
/// triggers created again on each table.
pub fn migrate(database: &Database, tables: &[config::TableName]) -> Result<(), String> {
    let mut client = database.connect()?;
    client.batch_execute(&capture::migration_sql(tables)).map_err(|e| db::error_text(&e))
}
