//! A real PostgreSQL server for tests.
//!
//! Docker does not run on the machines this project is built and tested on, so tests that need
//! PostgreSQL start one themselves, from the Debian `postgresql` package's programs
//! (`scripts/install-postgres.sh` installs them). [`PgServer::start`] gives each test a fresh
//! cluster of its own:
//!
//! - **Isolated.** Its own data directory in a new temporary directory (in `/dev/shm` when
//!   it has room, see [`TMPDIR_ENV`]), its own free `127.0.0.1` port, its own Unix socket
//!   directory; any number run in parallel.
//! - **Quick.** `initdb` runs once per test process, into a template that is never started;
//!   each server starts on a copy of it, in a few hundred milliseconds.
//! - **Disposable.** Tuned for speed over durability (`fsync=off`, `synchronous_commit=off`,
//!   `full_page_writes=off`); trust authentication, user `postgres`, database `postgres`.
//! - **Owned by the test.** The server is a child process of the test process (not a daemon
//!   started through `pg_ctl`), in a process group of its own. Dropping the [`PgServer`]
//!   (which also happens when the test panics) shuts it down and removes its directory; and the
//!   kernel kills it when the test process ends in any other way (`PR_SET_PDEATHSIG`), so no
//!   server ever outlives the tests.
//! - **Controllable.** [`PgServer::restart`], [`PgServer::stop`] and
//!   [`PgServer::start_again`] keep the port and the data, to test reconnection and outages.
//!
//! When the tests run as root (as on CI), the server programs run as the `postgres` system
//! user instead: `initdb` and `postgres` refuse to run as root.
//!
//! Every failure panics with a message that says what to do, and, once a server exists, with
//! the tail of its log.

mod binaries;
mod process;
mod ready;
mod template;

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub use binaries::BINDIR_ENV;
pub use template::TMPDIR_ENV;

/// How long a starting server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a starting server is checked.
const READY_POLL: Duration = Duration::from_millis(20);
/// How long a fast shutdown (stop, restart) may take before the server is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long an immediate shutdown (drop) may take before the server is killed.
const DROP_GRACE: Duration = Duration::from_secs(5);
/// How many free ports are tried when another process takes the port first.
const PORT_ATTEMPTS: usize = 5;
/// How many lines [`PgServer::log_tail`] returns.
const LOG_TAIL_LINES: usize = 40;

/// The settings every server starts with, before the caller's.
const SETTINGS: [(&str, &str); 7] = [
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_connections", "100"),
    ("shared_buffers", "128MB"),
    // Dynamic shared memory as files in the data directory rather than POSIX segments in
    // /dev/shm, so that a server that had to be killed leaves nothing behind once its
    // directory is removed.
    ("dynamic_shared_memory_type", "mmap"),
];

/// Ports of this process's running servers, so that two servers started at the same moment
/// do not pick the same free port.
static PORTS_IN_USE: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A PostgreSQL server with a fresh cluster, for one test.
///
/// Shared freely between threads (`Send + Sync`); every method takes `&self`. Dropping it
/// shuts the server down (immediately: the data is thrown away), kills it if it does not
/// exit within a few seconds, and removes its directory.
pub struct PgServer {
    port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// The `-c name=value` arguments, kept for [`PgServer::start_again`].
    settings: Vec<String>,
    /// The running postmaster; `None` while stopped.
    child: Mutex<Option<Child>>,
    /// The temporary directory (data, socket, log); removed after the server has stopped,
    /// because fields drop after [`Drop::drop`] has run.
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a server on a fresh cluster in a new temporary directory, listening on a free
    /// `127.0.0.1` port, and returns once it accepts connections.
    ///
    /// Panics, with what to do, if the server programs are missing (run
    /// `scripts/install-postgres.sh`, or set [`BINDIR_ENV`]), or with the server's log if it
    /// does not start within 30 seconds.
    pub fn start() -> PgServer {
        PgServer::start_with_settings(&[])
    }

    /// Like [`PgServer::start`], with extra server settings (`-c name=value`), which override
    /// the defaults and are kept across restarts; e.g. `[("wal_level", "logical")]`.
    pub fn start_with_settings(settings: &[(&str, &str)]) -> PgServer {
        let bindir = binaries::bindir().unwrap_or_else(|error| panic!("pg-testbed: {error}"));
        let identity = process::identity().unwrap_or_else(|error| panic!("pg-testbed: {error}"));
        let template = template::data_dir(bindir, identity)
            .unwrap_or_else(|error| panic!("pg-testbed: cannot build the template cluster: {error}"));
        let dir = template::private_dir("", identity)
            .unwrap_or_else(|error| panic!("pg-testbed: cannot create a temporary directory: {error}"));
        let data_dir = dir.path().join("data");
        template::copy_tree(template, &data_dir, identity).unwrap_or_else(|error| {
            panic!(
                "pg-testbed: cannot copy the template cluster {} to {}: {error}",
                template.display(),
                data_dir.display()
            )
        });
        let settings = SETTINGS
            .iter()
            .copied()
            .chain(settings.iter().copied())
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let log_path = dir.path().join("postgres.log");
        let mut server = PgServer { port: 0, data_dir, log_path, settings, child: Mutex::new(None), _dir: dir };
        for attempt in 1..=PORT_ATTEMPTS {
            server.port = free_port();
            match server.launch() {
                Ok(child) => {
                    *server.lock() = Some(child);
                    return server;
                }
                Err(Launch::PortTaken) if attempt < PORT_ATTEMPTS => release_port(server.port),
                Err(Launch::PortTaken) => {
                    panic!(
                        "pg-testbed: {PORT_ATTEMPTS} free ports in a row were taken before the server could bind them"
                    )
                }
                Err(Launch::Failed(why)) => panic!("pg-testbed: {why}\n{}", server.log_tail()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The port the server listens on, on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`: user `postgres`, no password (trust).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `db` on this server; create it first (`CREATE DATABASE`).
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` (any number of statements, as a script) in database `postgres` with `psql`,
    /// stopping at the first error, and returns what it printed: rows unaligned, columns
    /// separated by `|`, one row a line, no headers or command tags, without the last newline.
    /// `SELECT 1, 'a'` gives `"1|a"`.
    ///
    /// Panics with `psql`'s error and the server log's tail if a statement fails.
    pub fn sql(&self, sql: &str) -> String {
        self.sql_in("postgres", sql)
    }

    /// [`PgServer::sql`], in database `db`.
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        let bindir = binaries::bindir().unwrap_or_else(|error| panic!("pg-testbed: {error}"));
        let mut command = Command::new(bindir.join("psql"));
        process::clear_pg_env(&mut command);
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-f", "-"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|error| panic!("pg-testbed: cannot run psql: {error}"));
        // psql prints while it reads: feed the script from another thread while this one
        // drains the output, or a long script with a long output would fill both pipes.
        let stdin = child.stdin.take();
        let output = thread::scope(|scope| {
            if let Some(mut stdin) = stdin {
                // A write error means psql stopped reading, i.e. it failed: its status says why.
                scope.spawn(move || stdin.write_all(sql.as_bytes()));
            }
            child.wait_with_output()
        })
        .unwrap_or_else(|error| panic!("pg-testbed: psql failed: {error}"));
        if !output.status.success() {
            panic!(
                "pg-testbed: psql ({}) failed on database {db:?}:\n{}\n--- SQL ---\n{sql}\n--- server log (tail) ---\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end(),
                self.log_tail()
            );
        }
        let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        stdout
    }

    /// Shuts the server down (fast: open connections are closed, committed data is kept)
    /// and starts it again on the same port and data, returning once it accepts connections.
    pub fn restart(&self) {
        let mut child = self.lock();
        self.stop_locked(&mut child);
        self.start_locked(&mut child);
    }

    /// Shuts the server down (fast) and leaves it down, until [`PgServer::start_again`]:
    /// connections are refused meanwhile. Does nothing if it is already down.
    pub fn stop(&self) {
        self.stop_locked(&mut self.lock());
    }

    /// Starts the server again after [`PgServer::stop`], on the same port and data, returning
    /// once it accepts connections. Does nothing if it is running.
    pub fn start_again(&self) {
        self.start_locked(&mut self.lock());
    }

    /// Whether the server process is running (it may still be starting or stopping).
    pub fn is_running(&self) -> bool {
        self.lock().as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log_path, LOG_TAIL_LINES)
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", self.log_path.display()))
    }

    /// The server's log file, which lives as long as the server.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server's data directory, which lives as long as the server.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        // Every update of the slot is one assignment, so a panic cannot leave it half-done.
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop_locked(&self, child: &mut Option<Child>) {
        if let Some(mut running) = child.take() {
            process::shut_down(&mut running, libc::SIGINT, STOP_GRACE);
        }
    }

    fn start_locked(&self, child: &mut Option<Child>) {
        if let Some(running) = child.as_mut() {
            if matches!(running.try_wait(), Ok(None)) {
                return;
            }
        }
        // The port was ours a moment ago; if another process grabbed it meanwhile, it may
        // be a client's short-lived socket, so give it a few tries before giving up.
        for attempt in 1..=PORT_ATTEMPTS {
            match self.launch() {
                Ok(started) => {
                    *child = Some(started);
                    return;
                }
                Err(Launch::PortTaken) if attempt < PORT_ATTEMPTS => thread::sleep(Duration::from_millis(200)),
                Err(Launch::PortTaken) => panic!(
                    "pg-testbed: port {} was taken by another process while the server was down\n{}",
                    self.port,
                    self.log_tail()
                ),
                Err(Launch::Failed(why)) => panic!("pg-testbed: {why}\n{}", self.log_tail()),
            }
        }
    }

    /// Starts the postmaster on `self.port` and waits until it is ready.
    fn launch(&self) -> Result<Child, Launch> {
        let failed = |what: &str, error: io::Error| Launch::Failed(format!("{what}: {error}"));
        let bindir = binaries::bindir().map_err(Launch::Failed)?;
        let identity = process::identity().map_err(Launch::Failed)?;
        let dir = self.data_dir.parent().unwrap_or(&self.data_dir);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|error| failed("cannot open the server log", error))?;
        let log_err = log.try_clone().map_err(|error| failed("cannot open the server log", error))?;
        let log_start = log.metadata().map(|meta| meta.len()).unwrap_or(0);
        let mut command = process::command(&bindir.join("postgres"), identity, dir);
        command.arg("-D").arg(&self.data_dir).arg("-p").arg(self.port.to_string()).arg("-k").arg(dir);
        for setting in &self.settings {
            command.arg("-c").arg(setting);
        }
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        process::own_server(&mut command);
        let mut child =
            process::spawn_owned(command).map_err(|error| failed("cannot start the postgres server", error))?;

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let log = tail_from(&self.log_path, log_start);
                    return Err(if log.contains("Address already in use") {
                        Launch::PortTaken
                    } else {
                        Launch::Failed(format!("the postgres server exited while starting ({status})"))
                    });
                }
                Ok(None) => {}
                Err(error) => return Err(failed("cannot check on the postgres server", error)),
            }
            if ready::lock_file_says_ready(&self.data_dir, child.id()) && ready::accepts_connections(self.port) {
                return Ok(child);
            }
            if Instant::now() >= deadline {
                process::shut_down(&mut child, libc::SIGQUIT, DROP_GRACE);
                return Err(Launch::Failed(format!(
                    "the postgres server did not accept connections on port {} within {READY_TIMEOUT:?}",
                    self.port
                )));
            }
            thread::sleep(READY_POLL);
        }
    }
}

/// Why a start did not succeed.
enum Launch {
    /// Another process bound the port first; try another.
    PortTaken,
    /// Anything else, said in full.
    Failed(String),
}

impl fmt::Debug for PgServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgServer").field("port", &self.port).field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(mut running) = child.take() {
            // Immediate shutdown: nothing is kept, so no checkpoint is worth waiting for; the
            // postmaster still takes its backends down and releases its shared memory.
            process::shut_down(&mut running, libc::SIGQUIT, DROP_GRACE);
        }
        release_port(self.port);
        // `_dir` drops next and removes the directory.
    }
}

/// A port that was free a moment ago on 127.0.0.1, and is not one of this process's servers'.
fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap_or_else(|error| panic!("pg-testbed: cannot bind a free port on 127.0.0.1: {error}"));
        let mut ports = PORTS_IN_USE.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

fn release_port(port: u16) {
    if let Some(ports) = PORTS_IN_USE.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
        ports.remove(&port);
    }
}

/// The last `lines` lines of the file at `path` (reading at most its last 64 KiB).
fn tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

/// What the file at `path` holds from byte `start` on (empty if it cannot be read).
fn tail_from(path: &Path, start: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<PgServer>();
    }

    #[test]
    fn free_ports_are_not_handed_out_twice_while_in_use() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        ports.into_iter().for_each(release_port);
    }
}
