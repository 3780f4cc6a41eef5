//! Running PostgreSQL's programs: as which user, in which environment, and how the server
//! process is tied to the test process so that it never outlives it.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The user the server programs run as, when the test process is root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Identity {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// `None` when the test process is not root: the programs then run as the current user.
/// When it is root, the `postgres` system user (which Debian's package creates): `initdb` and
/// `postgres` refuse to run as root.
pub(crate) fn identity() -> Result<Option<Identity>, String> {
    static IDENTITY: OnceLock<Result<Option<Identity>, String>> = OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                return Ok(None);
            }
            lookup_user("postgres").map(Some).ok_or_else(|| {
                "the tests run as root, and initdb and postgres refuse to; but there is no `postgres` \
                 system user to run them as (Debian's postgresql package creates it: run \
                 scripts/install-postgres.sh)"
                    .to_owned()
            })
        })
        .clone()
}

/// The uid and primary gid of `name`, with the re-entrant `getpwnam_r`.
fn lookup_user(name: &str) -> Option<Identity> {
    let name = CString::new(name).ok()?;
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: `passwd` is plain data; getpwnam_r fills it, pointing into `buffer`, which
    // outlives every read of it below.
    let mut passwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the length given, and `name` is NUL-terminated.
    let error =
        unsafe { libc::getpwnam_r(name.as_ptr(), &mut passwd, buffer.as_mut_ptr().cast(), buffer.len(), &mut found) };
    (error == 0 && !found.is_null()).then_some(Identity { uid: passwd.pw_uid, gid: passwd.pw_gid })
}

/// A command for one of the server programs: run as `identity` (when given), in `cwd` (which
/// that user can enter), with no `PG*` variables from the caller's environment and the C locale.
pub(crate) fn command(program: &Path, identity: Option<Identity>, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd).env("LC_ALL", "C");
    clear_pg_env(&mut command);
    if let Some(Identity { uid, gid }) = identity {
        // SAFETY: the hook runs between fork and exec, where only async-signal-safe calls are
        // allowed; setgroups, setgid and setuid are plain system calls and allocate nothing.
        unsafe {
            command.pre_exec(move || {
                // Drop root's supplementary groups first, then the group, then the user: once
                // the uid is no longer root the other two are no longer allowed.
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
}

/// Removes every `PG*` variable (`PGHOST`, `PGDATA`, `PGOPTIONS`, ...) the test process has,
/// so that neither the server nor `psql` is pointed anywhere but where the harness says.
pub(crate) fn clear_pg_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
}

/// Makes `command` (built by [`command`]) a server process owned by the test process: in a
/// process group of its own (so that a terminal's Ctrl-C reaches the test, not the server, and
/// the whole group can be killed at once), and killed by the kernel when the test process ends.
pub(crate) fn own_server(command: &mut Command) {
    let parent = std::process::id();
    command.process_group(0);
    // SAFETY: as in `command`: prctl and getppid are async-signal-safe system calls.
    unsafe {
        // Registered after the identity hook on purpose: changing the uid or gid clears the
        // parent-death signal, so it must be set after the switch to the `postgres` user.
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The test process may have ended between fork and prctl; then no signal comes.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("the test process ended while the server was starting"));
            }
            Ok(())
        });
    }
}

/// Spawns a server from the process's long-lived spawner thread.
///
/// The parent-death signal is sent when the *thread* that forked the child ends, not the
/// process. Tests start servers from their own threads, which end with the test while the
/// server may live on (a server built in a helper thread and handed back, a server in a
/// `static`); so every server is forked from one thread that lives as long as the process,
/// and the signal comes exactly when the test process ends, however it ends.
pub(crate) fn spawn_owned(command: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Result<mpsc::Sender<Job>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, incoming) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("pg-testbed-spawner".to_owned())
            .spawn(move || {
                // The sender lives in a static, so this loop runs until the process exits.
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| jobs)
            .map_err(|error| format!("cannot start the pg-testbed spawner thread: {error}"))
    });
    let spawner = spawner.as_ref().map_err(|error| io::Error::other(error.clone()))?;
    let (reply, answer) = mpsc::channel();
    spawner.send((command, reply)).map_err(|_| io::Error::other("the pg-testbed spawner thread is gone"))?;
    answer.recv().map_err(|_| io::Error::other("the pg-testbed spawner thread is gone"))?
}

/// Sends `signal` to the process `pid`, ignoring a process that is already gone.
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions. The pid is that of a child the caller
    // has not reaped yet, so it cannot have been reused.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Sends SIGKILL to every process in the server's process group (the postmaster and its
/// backends), so that nothing is left holding shared memory or the port.
pub(crate) fn kill_group(pid: u32) {
    // SAFETY: as in `signal`; the group id is the unreaped postmaster's pid.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

/// Waits up to `timeout` for `child` to exit; `Ok(None)` when it is still running then.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Stops a server with `signal` (SIGINT: fast shutdown; SIGQUIT: immediate shutdown), and if it
/// has not exited within `grace`, kills its whole process group. Always reaps it.
pub(crate) fn shut_down(child: &mut Child, how: libc::c_int, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        // Already exited (and now reaped, so its pid may be reused: signal nothing). Its
        // backends notice the postmaster's death and exit on their own.
        return;
    }
    signal(child.id(), how);
    if !matches!(wait_timeout(child, grace), Ok(Some(_))) {
        kill_group(child.id());
        let _ = child.wait();
    }
}
