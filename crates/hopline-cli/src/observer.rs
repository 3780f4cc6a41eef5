//! `hopline observer`: the observer's database side: its schema and triggers, and its
//! dead-letter queue. (The observer itself runs with `hopline run`.)

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use hopline_observer::db::Database;
use hopline_observer::dlq::{self, Which};

#[derive(Subcommand)]
pub enum ObserverCommand {
    /// Create the `hopline` schema and the capture triggers on the tables a config's observers
    /// watch (`hopline run` does this too when they are missing). Idempotent; the triggers are
    /// created again, keyed by each table's primary key.
    Migrate {
        /// An observer pipeline config (YAML): its source's database and its observers' tables.
        config: PathBuf,
        /// Print the SQL for review instead of running it.
        #[arg(long)]
        print: bool,
    },
    /// The dead-letter queue: actions that gave up.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List the dead letters, oldest first.
    List {
        /// The database (a libpq URL; `${NAME}` references are not expanded here, your shell does that).
        #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
        database: String,
        /// One JSON object a line: id, event_id, table, key, action, attempts, last_error (and
        /// observer, consumer, created_at).
        #[arg(long)]
        json: bool,
        /// Only this consumer's (an observer config's checkpoint name).
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Deliver dead letters again; those delivered are removed, the others stay with their last
    /// error. The webhook's URL, headers and secret are expanded from this environment, as the
    /// run expanded them (a letter whose request cannot be expanded here is not sent, and left as
    /// it was); a letter another retry is sending is left to it. Exit 0 when all were delivered,
    /// 1 otherwise.
    Retry {
        /// The ids to retry (from `dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        /// Retry every dead letter.
        #[arg(long)]
        all: bool,
        #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
        database: String,
    },
}

pub fn run(command: ObserverCommand) -> anyhow::Result<()> {
    match command {
        ObserverCommand::Migrate { config, print } => {
            let config = hopline_runtime::load_config(&config)?;
            if config.app != hopline_observer::APP {
                bail!("{}: this config is for app `{}`, not `{}`", config.origin, config.app, hopline_observer::APP);
            }
            let (database, tables) = hopline_observer::watched(&config)?;
            if print {
                print!("{}", hopline_observer::capture::migration_sql(&tables));
                return Ok(());
            }
            hopline_observer::migrate(&database, &tables).map_err(anyhow::Error::msg)?;
            let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
            eprintln!("hopline: {} migrated; capturing changes of {}", database.shown(), names.join(", "));
            Ok(())
        }
        ObserverCommand::Dlq { command: DlqCommand::List { database, json, consumer } } => {
            let database = Database::parse(&database).map_err(|m| anyhow::anyhow!("--database: {m}"))?;
            let letters = dlq::list(&database, consumer.as_deref()).map_err(anyhow::Error::msg)?;
            if json {
                for letter in &letters {
                    println!("{}", letter.to_json());
                }
                return Ok(());
            }
            if letters.is_empty() {
                eprintln!("hopline: the dead-letter queue of {} is empty", database.shown());
                return Ok(());
            }
            println!(
                "{:>6}  {:<20}  {:<16}  {:<24}  {:>8}  last error",
                "id", "created", "table", "action", "attempts"
            );
            for l in &letters {
                println!(
                    "{:>6}  {:<20}  {:<16}  {:<24}  {:>8}  {}",
                    l.id,
                    l.created_at,
                    l.table,
                    format!("{}.{}", l.observer, l.action),
                    l.attempts,
                    l.last_error
                );
                println!("{:>6}  key {}  event {}", "", l.key, l.event_id);
            }
            Ok(())
        }
        ObserverCommand::Dlq { command: DlqCommand::Retry { ids, all, database } } => {
            let database = Database::parse(&database).map_err(|m| anyhow::anyhow!("--database: {m}"))?;
            let which = if all { Which::All } else { Which::Ids(ids) };
            let report = dlq::retry(&database, &which, &|name| std::env::var(name).ok())
                .map_err(anyhow::Error::msg)
                .context("cannot retry the dead-letter queue")?;
            for (id, how) in &report.delivered {
                println!("{id}: delivered ({how}); removed from the queue");
            }
            for (id, error) in &report.failed {
                println!("{id}: failed again: {error}");
            }
            for (id, error) in &report.skipped {
                println!("{id}: failed, not sent (the letter is left as it was): {error}");
            }
            for id in &report.busy {
                println!("{id}: being retried elsewhere; left to that retry");
            }
            for id in &report.missing {
                println!("{id}: not in the queue");
            }
            let undelivered = report.failed.len() + report.skipped.len() + report.busy.len() + report.missing.len();
            if undelivered > 0 {
                bail!("{} of {} dead letters delivered", report.delivered.len(), report.delivered.len() + undelivered);
            }
            Ok(())
        }
    }
}
