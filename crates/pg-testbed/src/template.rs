//! One `initdb`'d cluster per test process, copied for every server.
//!
//! `initdb` bootstraps the catalogs and the template databases: 0.6 to 0.8 s in `/dev/shm`
//! on this project's machines, over a second on disk. Copying its result (40 MB) to
//! `/dev/shm` takes about 0.1 s. So the first server of a process runs
//! `initdb` into a template directory, which is never started, and every server (the first
//! included) starts on a fresh copy of it.
//!
//! The template directory is removed when the process exits normally (an `atexit` hook; the
//! test harness exits that way whether tests pass or fail). A process that is killed leaves
//! its directories behind; the next process that builds a template removes those of processes
//! that no longer exist.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::process::{self, Identity};

/// The environment variable that names the directory in which servers' directories are made,
/// instead of `/dev/shm` or the system temporary directory. Keep it short: each server's Unix
/// socket goes in there, and socket paths are limited to 107 bytes.
pub const TMPDIR_ENV: &str = "HOPLINE_PG_TMPDIR";

/// The least free space `/dev/shm` must have to be used: a server takes about 40 MB, plus what
/// its test writes, and containers often give `/dev/shm` only 64 MB.
const MIN_SHM_FREE: u64 = 2 * 1024 * 1024 * 1024;

/// Where the servers' directories go: [`TMPDIR_ENV`] if set; else `/dev/shm` (a memory file
/// system) when it is writable and has room to spare; else the system temporary directory.
///
/// Memory matters: copying the template cluster (40 MB in a thousand files) to a disk-backed
/// `/tmp` took 0.9 s on this project's machines, and 0.1 s to `/dev/shm`.
pub(crate) fn base_dir() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        if let Some(dir) = std::env::var_os(TMPDIR_ENV) {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        if free_space(shm).is_some_and(|free| free >= MIN_SHM_FREE) && tempfile::tempdir_in(shm).is_ok() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        }
    })
}

/// The space unprivileged users may still use on the file system holding `dir`.
// The statvfs fields are u64 on 64-bit Linux, but narrower elsewhere.
#[allow(clippy::useless_conversion)]
fn free_space(dir: &Path) -> Option<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is plain data, filled in by the call; `path` is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    Some(u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize)))
}

/// The prefix of every directory this crate creates in [`base_dir`], followed by the creating
/// process's pid and a dash.
pub(crate) const DIR_PREFIX: &str = "hopline-pg-";

/// The data directory of the template cluster, built on first use.
pub(crate) fn data_dir(bindir: &Path, identity: Option<Identity>) -> Result<&'static Path, String> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE.get_or_init(|| build(bindir, identity)).as_deref().map_err(Clone::clone)
}

/// The directory holding the template cluster, for the exit hook.
static TEMPLATE_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_template_dir() {
    if let Some(dir) = TEMPLATE_DIR.get() {
        // Nothing can be reported at exit; a leftover is swept by a later process.
        let _ = fs::remove_dir_all(dir);
    }
}

fn build(bindir: &Path, identity: Option<Identity>) -> Result<PathBuf, String> {
    sweep_leftovers();
    let dir = private_dir("template-", identity)
        .map_err(|error| format!("cannot create the template cluster's directory: {error}"))?
        .keep();
    if TEMPLATE_DIR.set(dir.clone()).is_ok() {
        // SAFETY: the hook is an `extern "C"` function that does not unwind.
        unsafe {
            libc::atexit(remove_template_dir);
        }
    }
    let data = dir.join("data");
    let output = process::command(&bindir.join("initdb"), identity, &dir)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"])
        .output()
        .map_err(|error| format!("cannot run {}/initdb: {error}", bindir.display()))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(data)
}

/// A new directory `hopline-pg-<pid>-<what>XXXXXX` in [`base_dir`], mode
/// 0700, owned by `identity` when given (the server writes its socket and lock files there).
pub(crate) fn private_dir(what: &str, identity: Option<Identity>) -> io::Result<tempfile::TempDir> {
    let dir =
        tempfile::Builder::new().prefix(&format!("{DIR_PREFIX}{}-{what}", std::process::id())).tempdir_in(base_dir())?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
    if let Some(Identity { uid, gid }) = identity {
        lchown(dir.path(), Some(uid), Some(gid))?;
    }
    Ok(dir)
}

/// Copies the tree at `from` to `to` (which must not exist), keeping modes, and giving every
/// entry to `identity` when given (the copy is made by root, the server runs as `postgres`).
pub(crate) fn copy_tree(from: &Path, to: &Path, identity: Option<Identity>) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), identity)?;
        }
        fs::set_permissions(to, meta.permissions())?;
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        // Copies the mode too; on Linux the data moves in the kernel (copy_file_range).
        fs::copy(from, to)?;
    }
    if let Some(Identity { uid, gid }) = identity {
        lchown(to, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Removes the directories of earlier test processes that were killed before they could
/// clean up: `hopline-pg-<pid>-*` where no process `pid` exists any more. Their servers are
/// gone too: the kernel killed them with their test process.
fn sweep_leftovers() {
    let own = std::process::id();
    let Ok(entries) = fs::read_dir(base_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(DIR_PREFIX)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|pid| pid.parse::<u32>().ok()) else { continue };
        if pid != own && !alive(pid) {
            release_shared_memory(&entry.path().join("data"));
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Removes the System V shared memory segment of a killed server whose data directory is
/// `data_dir`, if no process is attached to it any more.
///
/// PostgreSQL keeps a small (56-byte) segment as an interlock, and removes it on any orderly
/// shutdown; a SIGKILLed server leaves it behind. Its key and id are on line 7 of the
/// server's `postmaster.pid`.
fn release_shared_memory(data_dir: &Path) {
    let Ok(lock_file) = fs::read_to_string(data_dir.join("postmaster.pid")) else { return };
    let Some(line) = lock_file.lines().nth(6) else { return };
    let mut numbers = line.split_whitespace().map(str::parse::<i64>);
    let (Some(Ok(key)), Some(Ok(id))) = (numbers.next(), numbers.next()) else { return };
    let Ok(id) = libc::c_int::try_from(id) else { return };
    // SAFETY: shmid_ds is plain data, filled in by IPC_STAT.
    let mut stats: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `stats` is a valid shmid_ds for IPC_STAT to fill; IPC_RMID takes no buffer.
    unsafe {
        // The id may have been reused since: remove only the segment with the same key that
        // nothing is attached to.
        if libc::shmctl(id, libc::IPC_STAT, &mut stats) == 0
            && i64::from(stats.shm_perm.__key) == key
            && stats.shm_nattch == 0
        {
            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
        }
    }
}

/// Whether a process `pid` exists (possibly owned by another user).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
