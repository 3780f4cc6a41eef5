#!/usr/bin/env bash
# Installs the PostgreSQL server programs that the pg-testbed crate runs (Debian's `postgresql`
# package: initdb, postgres and psql in /usr/lib/postgresql/<version>/bin), unless they are
# already there. Idempotent: when they are present it only says where, and exits.
#
# Runs apt-get as root, through sudo when not root. Works on a clean Debian 12 (and Ubuntu).
# pg-testbed starts its own servers on free ports; the cluster the package may create and
# start on port 5432 is not used.
set -euo pipefail

# The directory holding all of initdb, postgres and psql: $HOPLINE_PG_BINDIR when set (as
# pg-testbed reads it), else the newest /usr/lib/postgresql/<version>/bin.
server_bindir() {
    local dir
    if [ -n "${HOPLINE_PG_BINDIR:-}" ]; then
        dir=$HOPLINE_PG_BINDIR
        [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ] && echo "$dir" && return 0
        echo "install-postgres: HOPLINE_PG_BINDIR=$dir lacks initdb, postgres or psql" >&2
        return 1
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if dir=$(server_bindir); then
    echo "install-postgres: PostgreSQL server already installed in $dir; nothing to do"
    exit 0
fi
if [ -n "${HOPLINE_PG_BINDIR:-}" ]; then
    # An explicit choice that does not hold; installing the package would not change that.
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: no apt-get here; install the PostgreSQL server yourself and set" \
        "HOPLINE_PG_BINDIR to the directory holding initdb, postgres and psql" >&2
    exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-postgres: not root and no sudo: run this script as root" >&2
        exit 1
    fi
    as_root=(sudo)
fi

echo "install-postgres: PostgreSQL server not found; installing Debian's postgresql package"
${as_root[@]+"${as_root[@]}"} apt-get update
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends postgresql

if dir=$(server_bindir); then
    echo "install-postgres: installed $("$dir/postgres" --version) in $dir"
else
    echo "install-postgres: the postgresql package installed, but no /usr/lib/postgresql/*/bin" \
        "holds initdb, postgres and psql" >&2
    exit 1
fi
