//! Real servers: data across restarts, servers side by side, outages, and nothing left behind.

use std::net::{Ipv4Addr, TcpStream};
use std::thread;

use pg_testbed::PgServer;

fn accepts_tcp(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[test]
fn data_survives_a_restart() {
    let pg = PgServer::start();
    assert_eq!(pg.url(), format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port()));
    pg.sql("CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL)");
    pg.sql("INSERT INTO events VALUES (1, 'one'), (2, 'two'); UPDATE events SET body = 'TWO' WHERE id = 2;");
    assert_eq!(pg.sql("SELECT id, body FROM events ORDER BY id"), "1|one\n2|TWO");

    let port = pg.port();
    pg.restart();
    assert_eq!(pg.port(), port);
    assert!(pg.is_running());
    assert_eq!(pg.sql("SELECT count(*) FROM events"), "2");
    assert_eq!(pg.sql("SHOW fsync"), "off");
}

#[test]
fn servers_run_side_by_side() {
    let servers: Vec<PgServer> = (0..2).map(|_| thread::spawn(PgServer::start)).map(|t| t.join().unwrap()).collect();
    assert_ne!(servers[0].port(), servers[1].port());
    servers[0].sql("CREATE TABLE only_here (x int)");
    for (index, pg) in servers.iter().enumerate() {
        pg.sql(&format!("CREATE TABLE mine (n int); INSERT INTO mine VALUES ({index})"));
        assert_eq!(pg.sql("SELECT n FROM mine"), index.to_string());
    }
    assert_eq!(servers[0].sql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"), "1");
    assert_eq!(servers[1].sql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"), "0");
}

/// Started in a helper thread that ends at once: the server must live on (it is forked from
/// the crate's long-lived spawner thread, so the parent-death signal does not fire).
#[test]
fn a_server_outlives_the_thread_that_started_it() {
    let pg = thread::spawn(PgServer::start).join().unwrap();
    thread::sleep(std::time::Duration::from_millis(200));
    assert!(pg.is_running());
    assert_eq!(pg.sql("SELECT 40 + 2"), "42");
}

#[test]
fn stop_makes_an_outage_and_start_again_ends_it() {
    let pg = PgServer::start();
    pg.sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)");
    pg.stop();
    assert!(!pg.is_running());
    assert!(!accepts_tcp(pg.port()), "nothing listens during the outage");
    pg.stop(); // already down: nothing to do
    pg.start_again();
    pg.start_again(); // already up: nothing to do
    assert_eq!(pg.sql("SELECT x FROM kept"), "7");
}

#[test]
fn other_databases_and_settings() {
    let pg = PgServer::start_with_settings(&[("wal_level", "logical"), ("max_connections", "20")]);
    pg.sql("CREATE DATABASE app");
    assert_eq!(pg.url_for("app"), format!("postgres://postgres@127.0.0.1:{}/app", pg.port()));
    pg.sql_in("app", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    assert_eq!(pg.sql_in("app", "SELECT current_database(), count(*) FROM t"), "app|1");
    assert_eq!(pg.sql("SHOW wal_level"), "logical");
    pg.restart();
    assert_eq!(pg.sql("SHOW max_connections"), "20");
}

#[test]
fn a_failing_statement_panics_with_the_error() {
    let pg = PgServer::start();
    let panic = std::panic::catch_unwind(|| pg.sql("SELECT * FROM no_such_table")).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.contains("no_such_table"), "{message}");
    assert!(message.contains("server log"), "{message}");
    // The server is unharmed.
    assert_eq!(pg.sql("SELECT 1"), "1");
}

#[test]
fn dropping_the_server_stops_it_and_removes_its_directory() {
    let pg = PgServer::start();
    let (port, data_dir) = (pg.port(), pg.data_dir().to_owned());
    let lock_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
    let postmaster = lock_file.lines().next().unwrap().to_owned();
    assert!(std::path::Path::new(&format!("/proc/{postmaster}")).exists());
    drop(pg);
    assert!(!accepts_tcp(port));
    assert!(!data_dir.exists());
    assert!(!std::path::Path::new(&format!("/proc/{postmaster}")).exists(), "postmaster {postmaster} is gone");
}

#[test]
fn a_panicking_test_still_stops_its_server() {
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = thread::spawn(move || {
        let pg = PgServer::start();
        tx.send((pg.port(), pg.data_dir().to_owned())).unwrap();
        panic!("the test fails");
    })
    .join();
    assert!(outcome.is_err());
    let (port, data_dir) = rx.recv().unwrap();
    assert!(!accepts_tcp(port));
    assert!(!data_dir.exists());
}

/// A script and an output both larger than a pipe's buffer: psql must be fed and drained at once.
#[test]
fn long_scripts_with_long_output() {
    let pg = PgServer::start();
    let script: String = (0..20_000).map(|n| format!("SELECT {n} AS number_with_a_long_column_name;\n")).collect();
    let output = pg.sql(&script);
    assert_eq!(output.lines().count(), 20_000);
    assert_eq!(output.lines().last(), Some("19999"));
}

/// Someone else takes the port during an outage: starting again says so, and the server can
/// start once the port is free again.
#[test]
fn a_port_taken_during_an_outage_is_reported() {
    let pg = PgServer::start();
    pg.stop();
    let squatter = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, pg.port())).unwrap();
    let panic = std::panic::catch_unwind(|| pg.start_again()).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.contains("was taken by another process"), "{message}");
    drop(squatter);
    pg.start_again();
    assert_eq!(pg.sql("SELECT 1"), "1");
}
