//! `hopline_observer::http` against real sockets: tiny servers on `127.0.0.1` that answer
//! canned bytes (each check is exact about what went over which connection), and the
//! workspace's hyper-based webhook receiver.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hopline_observer::http::{Client, Error, Response, Url};
use tokio::runtime::Runtime;
use webhook_receiver::{Behaviour, Receiver};

/// How long a test server waits for anything before it fails the test.
const PATIENCE: Duration = Duration::from_secs(10);

const TIMEOUT: Duration = Duration::from_secs(5);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Starts `serve` on a thread with a listener on `127.0.0.1:0`; the base URL and the thread.
fn server<T: Send + 'static>(serve: impl FnOnce(TcpListener) -> T + Send + 'static) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (base, thread::spawn(move || serve(listener)))
}

/// The next connection, waiting at most [`PATIENCE`].
fn accept(listener: &TcpListener) -> Peer {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                return Peer { stream, input: Vec::new() };
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("no connection: {e}"),
        }
    }
}

/// Whether a connection is waiting to be accepted (connections are queued before the client's
/// connect returns, so after a post this is exact).
fn pending_connection(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

/// A request as a test server read it.
#[derive(Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// The server's end of a connection.
struct Peer {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Peer {
    /// The next request; `None` if the client closed the connection.
    fn request(&mut self) -> Option<Seen> {
        loop {
            if let Some(end) = self.input.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.input[..end + 4].to_vec()).unwrap();
                let seen = Seen { head, body: Vec::new() };
                let length: usize = seen.header("content-length").expect("a Content-Length").parse().unwrap();
                while self.input.len() < end + 4 + length {
                    assert!(self.read() > 0, "the connection closed in the middle of a body");
                }
                let body = self.input[end + 4..end + 4 + length].to_vec();
                self.input.drain(..end + 4 + length);
                return Some(Seen { body, ..seen });
            }
            if self.read() == 0 {
                assert!(self.input.is_empty(), "the connection closed in the middle of a head");
                return None;
            }
        }
    }

    fn read(&mut self) -> usize {
        let mut chunk = [0; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.input.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("the test server cannot read: {e}"),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends `bytes` a few at a time, so that the client sees every part of the answer arrive
    /// on its own.
    fn dribble(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(5) {
            self.send(piece);
            thread::sleep(Duration::from_micros(300));
        }
    }

    /// Answers 200 with `body`.
    fn ok(&mut self, body: &str) {
        self.send(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    }
}

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

/// Posts `body` on `rt`: a client's connections belong to the runtime they were made on.
fn post(rt: &Runtime, client: &Client, url: &Url, body: &str) -> Result<Response, Error> {
    rt.block_on(client.post(url, &[], body.as_bytes(), TIMEOUT, 1024))
}

#[test]
fn a_content_length_answer_and_the_request_as_sent() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        let seen = peer.request().unwrap();
        peer.send(b"HTTP/1.1 201 Created\r\nX-Reply: yes\r\nContent-Length: 5\r\nx-reply: again\r\n\r\nhello");
        seen
    });
    let target = url(&format!("{base}/hook/a%20b?token=s3cret&x=1"));
    let client = Client::new(4);
    let headers = [("Content-Type", "application/json"), ("Idempotency-Key", "e-1")];
    let response = rt.block_on(client.post(&target, &headers, br#"{"a":1}"#, TIMEOUT, 1024)).expect("an answer");
    assert_eq!(response.status, 201);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.header("X-REPLY"), Some("yes"));
    assert_eq!(
        response.headers,
        [
            ("x-reply".to_string(), "yes".to_string()),
            ("content-length".into(), "5".into()),
            ("x-reply".into(), "again".into())
        ]
    );
    let seen = server.join().unwrap();
    let port = target.port();
    assert_eq!(
        seen.head,
        format!(
            "POST /hook/a%20b?token=s3cret&x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 7\r\n\
             Content-Type: application/json\r\nIdempotency-Key: e-1\r\nUser-Agent: hopline/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(seen.body, br#"{"a":1}"#);
}

#[test]
fn a_given_user_agent_replaces_ours_and_an_empty_body_is_sent_with_its_length() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        let seen = peer.request().unwrap();
        peer.send(b"HTTP/1.1 204 No Content\r\n\r\n");
        seen
    });
    let client = Client::new(4);
    let response = rt.block_on(client.post(&url(&base), &[("user-agent", "mine/2")], b"", TIMEOUT, 1024));
    let response = response.unwrap();
    assert_eq!((response.status, response.body.len()), (204, 0));
    let seen = server.join().unwrap();
    assert!(seen.head.starts_with("POST / HTTP/1.1\r\n"), "{}", seen.head);
    assert_eq!(seen.header("user-agent"), Some("mine/2"));
    assert_eq!(seen.header("content-length"), Some("0"));
    assert_eq!(seen.head.matches("ser-agent").count(), 1);
}

#[test]
fn chunked_answers_with_extensions_and_trailers_keep_the_connection() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        peer.request().unwrap();
        peer.dribble(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=\"v;a\\\"l\"\r\nhello\r\n1\r\n,\r\na ; x=y\r\n world!!!!\r\n\
              0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
        );
        // The framing was read exactly: the next request comes on the same connection.
        peer.request().unwrap();
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        pending_connection(&listener)
    });
    let client = Client::new(4);
    let target = url(&base);
    let first = post(&rt, &client, &target, "1").unwrap();
    assert_eq!(first.body, b"hello, world!!!!");
    assert_eq!(first.header("transfer-encoding"), Some("chunked"));
    assert_eq!(first.header("x-trailer"), None, "trailers are not headers");
    assert_eq!(post(&rt, &client, &target, "2").unwrap().body, b"abc");
    assert!(!server.join().unwrap(), "one connection");
}

#[test]
fn invalid_chunks_are_protocol_errors() {
    let rt = runtime();
    for bad in ["zz\r\nab\r\n0\r\n\r\n", "\r\n", "2\r\nabXX0\r\n\r\n", "2\nab\r\n0\r\n\r\n"] {
        let (base, server) = server(move |listener| {
            let mut peer = accept(&listener);
            peer.request().unwrap();
            peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            peer.send(bad.as_bytes());
            // Until the client gives up.
            while peer.request().is_some() {}
        });
        let error = post(&rt, &Client::new(4), &url(&base), "x").expect_err(bad);
        assert!(matches!(error, Error::Protocol(_)), "{bad:?}: {error:?}");
        server.join().unwrap();
    }
}

#[test]
fn a_body_until_the_end_of_the_connection_uses_it_up() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        peer.request().unwrap();
        peer.dribble(b"HTTP/1.1 200 OK\r\nX-Framing: none\r\n\r\nabc");
        drop(peer);
        let mut peer = accept(&listener);
        peer.request().unwrap();
        peer.send(b"HTTP/1.0 200 OK\r\n\r\nsecond");
    });
    let client = Client::new(4);
    let target = url(&base);
    let first = post(&rt, &client, &target, "1").unwrap();
    assert_eq!((first.status, first.body.as_slice()), (200, &b"abc"[..]));
    assert_eq!(post(&rt, &client, &target, "2").unwrap().body, b"second");
    server.join().unwrap();
}

#[test]
fn connection_close_sends_the_next_request_on_a_new_connection() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        first.request().unwrap();
        // Said, but the server leaves the connection open: the client must not use it again.
        first.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        let mut second = accept(&listener);
        second.request().unwrap();
        second.ok("new");
        // The client closed the first connection.
        assert!(first.request().is_none());
    });
    let client = Client::new(4);
    let target = url(&base);
    assert_eq!(post(&rt, &client, &target, "1").unwrap().body, b"ok");
    assert_eq!(post(&rt, &client, &target, "2").unwrap().body, b"new");
    server.join().unwrap();
}

#[test]
fn http_1_0_answers_close_unless_they_keep_alive() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        first.request().unwrap();
        first.send(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na");
        let mut second = accept(&listener);
        second.request().unwrap();
        second.send(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nb");
        second.request().unwrap();
        second.send(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nc");
        pending_connection(&listener)
    });
    let client = Client::new(4);
    let target = url(&base);
    for expected in ["a", "b", "c"] {
        assert_eq!(post(&rt, &client, &target, "x").unwrap().body, expected.as_bytes());
    }
    assert!(!server.join().unwrap());
}

#[test]
fn a_request_saying_connection_close_does_not_keep_the_connection() {
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        first.request().unwrap();
        first.ok("1");
        let mut second = accept(&listener);
        second.request().unwrap();
        second.ok("2");
    });
    let client = Client::new(4);
    let target = url(&base);
    let rt = runtime();
    for _ in 0..2 {
        rt.block_on(client.post(&target, &[("Connection", "close")], b"", TIMEOUT, 10)).unwrap();
    }
    server.join().unwrap();
}

#[test]
fn keep_alive_sends_requests_over_one_connection() {
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        let mut bodies = Vec::new();
        for i in 0..3 {
            bodies.push(peer.request().unwrap().body);
            peer.ok(&format!("answer {i}"));
        }
        (bodies, pending_connection(&listener))
    });
    let client = Client::new(1);
    let target = url(&base);
    // The runtime a client's connections are used on has to live as long as they do.
    let rt = runtime();
    for i in 0..3 {
        let response = rt.block_on(client.post(&target, &[], format!("request {i}").as_bytes(), TIMEOUT, 64));
        assert_eq!(response.unwrap().body, format!("answer {i}").as_bytes());
    }
    let (bodies, more) = server.join().unwrap();
    assert_eq!(bodies, [&b"request 0"[..], b"request 1", b"request 2"]);
    assert!(!more, "one connection");
    assert_eq!(format!("{client:?}"), "Client { max_idle_per_host: 1, idle: 1, .. }");
}

#[test]
fn no_idle_connections_are_kept_when_told_so() {
    let (base, server) = server(|listener| {
        for _ in 0..2 {
            let mut peer = accept(&listener);
            peer.request().unwrap();
            peer.ok("");
            assert!(peer.request().is_none(), "closed by the client");
        }
    });
    let client = Client::new(0);
    let target = url(&base);
    let rt = runtime();
    for _ in 0..2 {
        rt.block_on(client.post(&target, &[], b"", TIMEOUT, 64)).unwrap();
    }
    server.join().unwrap();
}

#[test]
fn a_pooled_connection_the_server_closed_is_replaced_transparently() {
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        first.request().unwrap();
        first.ok("1");
        // An idle timeout on the server's side.
        drop(first);
        let mut second = accept(&listener);
        let seen = second.request().unwrap();
        second.ok("2");
        seen.body
    });
    let client = Client::new(4);
    let target = url(&base);
    let rt = runtime();
    assert_eq!(rt.block_on(client.post(&target, &[], b"one", TIMEOUT, 64)).unwrap().body, b"1");
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    assert_eq!(rt.block_on(client.post(&target, &[], b"two", TIMEOUT, 64)).unwrap().body, b"2");
    assert_eq!(server.join().unwrap(), b"two");
}

#[test]
fn a_reused_connection_closed_without_an_answer_is_retried_once_on_a_new_one() {
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        first.request().unwrap();
        first.ok("1");
        // Closed as the request arrives: read, but not a byte of answer.
        let lost = first.request().unwrap();
        drop(first);
        let mut second = accept(&listener);
        let retried = second.request().unwrap();
        second.ok("2");
        (lost.body, retried.body, pending_connection(&listener))
    });
    let client = Client::new(4);
    let target = url(&base);
    let rt = runtime();
    rt.block_on(client.post(&target, &[], b"one", TIMEOUT, 64)).unwrap();
    assert_eq!(rt.block_on(client.post(&target, &[], b"two", TIMEOUT, 64)).unwrap().body, b"2");
    let (lost, retried, more) = server.join().unwrap();
    assert_eq!((lost.as_slice(), retried.as_slice(), more), (&b"two"[..], &b"two"[..], false));
}

#[test]
fn a_reused_connection_that_answered_a_part_is_not_retried() {
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        first.request().unwrap();
        first.ok("1");
        first.request().unwrap();
        first.send(b"HTTP/1.1 200 OK\r\nContent-Le");
        drop(first);
        listener
    });
    let client = Client::new(4);
    let target = url(&base);
    let rt = runtime();
    rt.block_on(client.post(&target, &[], b"one", TIMEOUT, 64)).unwrap();
    let error = rt.block_on(client.post(&target, &[], b"two", TIMEOUT, 64)).unwrap_err();
    assert!(matches!(&error, Error::Io(e) if e.kind() == ErrorKind::UnexpectedEof), "{error:?}");
    assert!(!pending_connection(&server.join().unwrap()), "not retried");
}

#[test]
fn a_new_connection_closed_without_an_answer_is_not_retried() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        peer.request().unwrap();
        drop(peer);
        listener
    });
    let error = post(&rt, &Client::new(4), &url(&base), "x").unwrap_err();
    assert!(matches!(&error, Error::Io(_)) && !error.is_connect() && !error.is_timeout(), "{error:?}");
    assert!(!pending_connection(&server.join().unwrap()), "not retried");
}

#[test]
fn interim_answers_are_passed_over() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        peer.request().unwrap();
        peer.send(b"HTTP/1.1 100 Continue\r\n\r\n");
        thread::sleep(Duration::from_millis(10));
        peer.dribble(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
        peer.send(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok");
        peer.request().unwrap();
        peer.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        pending_connection(&listener)
    });
    let client = Client::new(4);
    let target = url(&base);
    let response = post(&rt, &client, &target, "x").unwrap();
    assert_eq!((response.status, response.body.as_slice(), response.header("link")), (202, &b"ok"[..], None));
    assert_eq!(post(&rt, &client, &target, "y").unwrap().status, 200);
    assert!(!server.join().unwrap());
}

#[test]
fn switching_protocols_is_refused() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        peer.request().unwrap();
        peer.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        while peer.request().is_some() {}
    });
    assert!(matches!(post(&rt, &Client::new(4), &url(&base), "x"), Err(Error::Protocol(_))));
    server.join().unwrap();
}

#[test]
fn a_slow_server_times_out_and_its_connection_is_dropped() {
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        first.request().unwrap();
        // The head, then a stall in the middle of the body.
        first.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        let mut second = accept(&listener);
        second.request().unwrap();
        // No answer at all until the client gives up.
        assert!(second.request().is_none());
        assert!(first.request().is_none());
    });
    let client = Client::new(4);
    let target = url(&base);
    let rt = runtime();
    for _ in 0..2 {
        let started = Instant::now();
        let error = rt.block_on(client.post(&target, &[], b"x", Duration::from_millis(200), 64)).unwrap_err();
        let took = started.elapsed();
        assert!(error.is_timeout() && !error.is_connect(), "{error:?}");
        assert_eq!(error.to_string(), "timed out");
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2), "{took:?}");
    }
    drop(client);
    server.join().unwrap();
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let rt = runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = url(&format!("http://{}/hook", listener.local_addr().unwrap()));
    drop(listener);
    let error = post(&rt, &Client::new(4), &target, "x").unwrap_err();
    assert!(error.is_connect() && !error.is_timeout(), "{error:?}");
    assert!(error.to_string().starts_with("cannot connect: "), "{error}");
    assert!(!error.to_string().contains("hook"), "{error}");
}

#[test]
fn header_injection_is_refused_before_connecting() {
    let rt = runtime();
    // Nothing listens there: a connect error would show that the client tried.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = url(&format!("http://{}/hook", listener.local_addr().unwrap()));
    drop(listener);
    let client = Client::new(4);
    for headers in [[("X-Evil", "1\r\nX-Injected: 2")], [("X-Evil\r\nX-Injected", "2")], [("X-Evil", "1\n")]] {
        let error = rt.block_on(client.post(&target, &headers, b"x", TIMEOUT, 64)).unwrap_err();
        assert!(matches!(&error, Error::Protocol(_)), "{headers:?}: {error:?}");
        assert!(!error.to_string().contains("Injected"), "{error}");
    }
}

#[test]
fn a_head_over_64_kib_is_a_protocol_error() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        peer.request().unwrap();
        let mut answer = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        answer.resize(answer.len() + 70_000, b'a');
        answer.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        // The client stops reading and closes: the write may fail.
        let _ = peer.stream.write_all(&answer);
    });
    let error = post(&rt, &Client::new(4), &url(&base), "x").unwrap_err();
    assert!(matches!(&error, Error::Protocol(m) if m.contains("64 KiB")), "{error:?}");
    server.join().unwrap();
}

#[test]
fn bodies_are_cut_to_keep_body_and_long_ones_are_not_drained() {
    const LONG: usize = 200 * 1024;
    let (base, server) = server(|listener| {
        let mut first = accept(&listener);
        // A short body is read to its end: the connection stays.
        first.request().unwrap();
        first.ok(&"x".repeat(100));
        first.request().unwrap();
        first.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n");
        first.send(&[b'y'; 64]);
        first.send(b"\r\n0\r\n\r\n");
        // A long one is not.
        first.request().unwrap();
        let mut long = format!("HTTP/1.1 200 OK\r\nContent-Length: {LONG}\r\n\r\n").into_bytes();
        long.resize(long.len() + LONG, b'z');
        let _ = first.stream.write_all(&long);
        let mut second = accept(&listener);
        second.request().unwrap();
        let _ = second.stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for _ in 0..LONG / 1024 {
            let _ = second.stream.write_all(format!("400\r\n{}\r\n", "w".repeat(1024)).as_bytes());
        }
        let _ = second.stream.write_all(b"0\r\n\r\n");
        let mut third = accept(&listener);
        third.request().unwrap();
        third.ok("end");
        pending_connection(&listener)
    });
    let client = Client::new(4);
    let target = url(&base);
    let rt = runtime();
    let post = |keep_body| rt.block_on(client.post(&target, &[], b"", TIMEOUT, keep_body)).unwrap().body;
    assert_eq!(post(10), b"xxxxxxxxxx");
    assert_eq!(post(0), b"");
    assert_eq!(post(5), b"zzzzz");
    assert_eq!(post(3), b"www");
    assert_eq!(post(1024), b"end");
    assert!(!server.join().unwrap());
}

#[test]
fn a_keep_body_over_the_drain_limit_keeps_that_much() {
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        peer.request().unwrap();
        let body = "q".repeat(100 * 1024);
        peer.ok(&body);
        // The body was read to its end within keep_body: the connection stays.
        peer.request().unwrap();
        peer.ok("again");
    });
    let client = Client::new(4);
    let target = url(&base);
    let rt = runtime();
    let body = rt.block_on(client.post(&target, &[], b"", TIMEOUT, 1 << 20)).unwrap().body;
    assert_eq!(body.len(), 100 * 1024);
    assert_eq!(rt.block_on(client.post(&target, &[], b"", TIMEOUT, 64)).unwrap().body, b"again");
    server.join().unwrap();
}

#[test]
fn ipv6_literal_hosts() {
    let rt = runtime();
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut peer = Peer { stream, input: Vec::new() };
        let seen = peer.request().unwrap();
        peer.ok("v6");
        seen
    });
    let target = url(&format!("http://[::1]:{port}/six?q=1"));
    assert_eq!(post(&rt, &Client::new(4), &target, "x").unwrap().body, b"v6");
    let seen = server.join().unwrap();
    assert!(seen.head.starts_with("POST /six?q=1 HTTP/1.1\r\n"), "{}", seen.head);
    assert_eq!(seen.header("host"), Some(format!("[::1]:{port}").as_str()));
}

#[test]
fn host_names_are_resolved() {
    let rt = runtime();
    let (base, server) = server(|listener| {
        let mut peer = accept(&listener);
        let seen = peer.request().unwrap();
        peer.ok("named");
        seen
    });
    let port = base.rsplit(':').next().unwrap();
    let target = url(&format!("http://LocalHost:{port}/named"));
    assert_eq!(target.host(), "localhost");
    assert_eq!(post(&rt, &Client::new(4), &target, "x").unwrap().body, b"named");
    assert_eq!(server.join().unwrap().header("host"), Some(format!("localhost:{port}").as_str()));
}

#[test]
fn a_thousand_posts_sixteen_at_a_time_reach_the_webhook_receiver() {
    const POSTS: usize = 1000;
    let receiver = Receiver::start(Behaviour::Ok);
    let target = url(&receiver.url());
    assert_eq!(target.path(), webhook_receiver::HOOK_PATH);
    let client = Client::new(16);
    let next = Cell::new(0);
    let rt = runtime();
    let worker = || async {
        loop {
            let i = next.get();
            if i == POSTS {
                return;
            }
            next.set(i + 1);
            let index = i.to_string();
            let body = format!(r#"{{"n":{i}}}"#);
            let headers = [("content-type", "application/json"), ("x-index", index.as_str())];
            let response = client.post(&target, &headers, body.as_bytes(), TIMEOUT, 1024).await.unwrap();
            assert_eq!((response.status, response.body.as_slice()), (200, &b""[..]));
        }
    };
    let started = Instant::now();
    rt.block_on(futures_util::future::join_all((0..16).map(|_| worker())));
    let took = started.elapsed();
    let requests = receiver.wait_for(POSTS, PATIENCE);
    assert_eq!(requests.len(), POSTS);
    let mut seen = vec![false; POSTS];
    for request in &requests {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", webhook_receiver::HOOK_PATH));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("user-agent"), Some(concat!("hopline/", env!("CARGO_PKG_VERSION"))));
        assert_eq!(request.header("host"), Some(receiver.local_addr().to_string().as_str()));
        let i: usize = request.header("x-index").unwrap().parse().unwrap();
        assert_eq!(request.json(), serde_json::json!({ "n": i }));
        assert!(!std::mem::replace(&mut seen[i], true), "{i} twice");
    }
    assert!(format!("{client:?}").contains("idle: 16"), "{client:?}");
    eprintln!("{POSTS} posts in {took:?}");
}
