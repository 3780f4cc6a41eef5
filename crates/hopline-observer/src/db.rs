//! Connections to the observed database, and how they are named in messages (host, port and
//! database, never the password or the whole URL).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The keepalive idle time `postgres` uses when the URL sets none (it has no "unset").
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVES_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// A database to connect to.
#[derive(Clone)]
pub struct Database {
    config: postgres::Config,
    shown: String,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("at", &self.shown).finish_non_exhaustive()
    }
}

impl Database {
    /// Reads a libpq URL (`postgres://user:pw@host:port/db`) or key=value string.
    pub fn parse(text: &str) -> Result<Database, String> {
        let mut config = postgres::Config::from_str(text)
            .map_err(|e| format!("expected a PostgreSQL connection URL such as postgres://user@host:5432/db ({e})"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("hopline-observer");
        }
        // A network that silently goes away (a NAT or firewall forgetting the connection, a host
        // that vanished) would otherwise look alive for hours: the first keepalive goes after 2
        // hours idle, and unacknowledged data is retransmitted for about 15 minutes. An
        // observer waiting for changes, or writing its checkpoint, would wait that long
        // before reconnecting. So, unless the URL says otherwise: probe after 30 s idle, every
        // 10 s, and give up after 3 unanswered probes; and close a connection whose sent data
        // stays unacknowledged for 30 s (Linux only). A lost network is then noticed within
        // about a minute. (The URL's `keepalives=0` still turns keepalives off; a 0 for the
        // others, which libpq reads as "the system's default", cannot be told from absent.)
        if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
            config.keepalives_idle(KEEPALIVES_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVES_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVES_RETRIES);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
        let shown = format!("{host}:{port}/{db}");
        Ok(Database { config, shown })
    }

    /// `host:port/database`, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn connect(&self) -> Result<postgres::Client, String> {
        self.config
            .connect(postgres::NoTls)
            .map_err(|e| format!("cannot connect to {}: {}", self.shown, error_text(&e)))
    }
}

/// A PostgreSQL error with what the server said (message, detail, hint) or the I/O cause.
pub fn error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// Whether an error means the connection is gone (worth reconnecting), rather than a statement
/// the server refused.
pub fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception), 57P01..57P03 (admin shutdown, crash shutdown,
        // cannot connect now).
        Some(code) => code.code().starts_with("08") || matches!(code.code(), "57P01" | "57P02" | "57P03"),
        None => true,
    }
}

/// Backoff between reconnection attempts: 100 ms doubling to 5 s.
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { next: Duration::from_millis(100) }
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        wait
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_shown_without_credentials() {
        let db = Database::parse("postgres://app:s3cret@db.internal:6543/shop").unwrap();
        assert_eq!(db.shown(), "db.internal:6543/shop");
        assert!(!format!("{db:?}").contains("s3cret"));
        let e = Database::parse("mysql://x").unwrap_err();
        assert!(e.contains("expected a PostgreSQL connection URL"), "{e}");
    }

    #[test]
    fn a_lost_network_is_noticed_within_a_minute_unless_the_url_says_otherwise() {
        let db = Database::parse("postgres://app@db.internal/shop").unwrap();
        assert!(db.config.get_keepalives());
        assert_eq!(db.config.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(db.config.get_keepalives_interval(), Some(Duration::from_secs(10)));
        assert_eq!(db.config.get_keepalives_retries(), Some(3));
        assert_eq!(db.config.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
        let db = Database::parse(
            "postgres://app@db.internal/shop?keepalives_idle=600&keepalives_interval=60&keepalives_retries=9&\
             tcp_user_timeout=120",
        )
        .unwrap();
        assert_eq!(db.config.get_keepalives_idle(), Duration::from_secs(600));
        assert_eq!(db.config.get_keepalives_interval(), Some(Duration::from_secs(60)));
        assert_eq!(db.config.get_keepalives_retries(), Some(9));
        assert_eq!(db.config.get_tcp_user_timeout(), Some(&Duration::from_secs(120)));
        let db = Database::parse("host=db.internal dbname=shop keepalives=0").unwrap();
        assert!(!db.config.get_keepalives());
    }

    #[test]
    fn backoff_doubles_to_five_seconds() {
        let mut b = Backoff::new();
        let waits: Vec<u128> = (0..8).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
