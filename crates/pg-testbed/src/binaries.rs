//! Finding the PostgreSQL server programs.
//!
//! Debian's `postgresql-NN` packages put them in `/usr/lib/postgresql/NN/bin`, off the `PATH`
//! (what is on the `PATH` is `postgresql-common`'s wrapper scripts). `pg_config --bindir` is
//! not a reliable way there: `pg_config` comes with `libpq-dev`, which may be installed without
//! any server, or for another version than the server.

use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that names the directory holding `initdb`, `postgres` and `psql`,
/// instead of the newest `/usr/lib/postgresql/*/bin`.
pub const BINDIR_ENV: &str = "HOPLINE_PG_BINDIR";

/// The programs a server needs: `initdb` for the cluster, `postgres` to run it, `psql` for
/// [`crate::PgServer::sql`].
const PROGRAMS: [&str; 3] = ["initdb", "postgres", "psql"];

/// Where Debian installs one directory per major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The directory of the server programs, found once per process.
pub(crate) fn bindir() -> Result<&'static Path, String> {
    static BINDIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINDIR.get_or_init(find).as_deref().map_err(Clone::clone)
}

fn find() -> Result<PathBuf, String> {
    if let Some(dir) = env::var_os(BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        return match missing(&dir) {
            None => Ok(dir),
            Some(program) => Err(format!(
                "{BINDIR_ENV}={} has no executable `{program}` (it needs {}); unset it, or run \
                 scripts/install-postgres.sh and point it at /usr/lib/postgresql/<version>/bin",
                dir.display(),
                PROGRAMS.join(", ")
            )),
        };
    }
    let mut candidates: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(DEBIAN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = version(&entry.file_name().to_string_lossy())?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    // Highest version first: 16 before 15 before 9.6.
    candidates.sort_by(|a, b| b.0.cmp(&a.0));
    candidates.into_iter().map(|(_, dir)| dir).find(|dir| missing(dir).is_none()).ok_or_else(|| {
        format!(
            "no PostgreSQL server found: no {DEBIAN_ROOT}/<version>/bin holds {}; run \
             scripts/install-postgres.sh (it installs Debian's `postgresql` package), or set \
             {BINDIR_ENV} to a directory that holds them",
            PROGRAMS.join(", ")
        )
    })
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; `None` for names that are not versions.
fn version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// The first of [`PROGRAMS`] that `dir` lacks as an executable file.
fn missing(dir: &Path) -> Option<&'static str> {
    PROGRAMS.into_iter().find(|program| {
        !fs::metadata(dir.join(program)).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        let mut versions: Vec<Vec<u32>> = ["9.6", "15", "10", "16"].iter().filter_map(|v| version(v)).collect();
        versions.sort_by(|a, b| b.cmp(a));
        assert_eq!(versions, [vec![16], vec![15], vec![10], vec![9, 6]]);
        assert_eq!(version("main"), None);
        assert_eq!(version(""), None);
    }
}
