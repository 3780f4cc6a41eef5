//! The receiver over real HTTP: what is recorded, how each behaviour answers, and waiting.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use webhook_receiver::{Behaviour, Receiver};

const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(WAIT).build().unwrap()
}

fn post(client: &reqwest::blocking::Client, url: &str, body: &str) -> u16 {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", "k-1")
        .body(body.to_owned())
        .send()
        .expect("the receiver answers")
        .status()
        .as_u16()
}

#[test]
fn requests_are_recorded_with_headers_and_body() {
    let receiver = Receiver::start(Behaviour::Ok);
    assert_eq!(receiver.url(), format!("http://127.0.0.1:{}/hook", receiver.local_addr().port()));
    let before = SystemTime::now();
    let client = client();
    let response = client
        .post(format!("{}?attempt=1", receiver.url()))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", "evt-42")
        .header("X-Commit-Ns", "1700000000000000000")
        .body(r#"{"id":42,"kind":"created"}"#)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().unwrap().len(), 0, "200 answers have an empty body");
    client.get(format!("http://{}/elsewhere", receiver.local_addr())).send().unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let hook = &requests[0];
    assert_eq!((hook.method.as_str(), hook.path.as_str(), hook.query.as_deref()), ("POST", "/hook", Some("attempt=1")));
    assert_eq!(hook.header("idempotency-key"), Some("evt-42"));
    assert_eq!(hook.header("X-COMMIT-NS"), Some("1700000000000000000"));
    assert!(hook.headers.iter().any(|(name, value)| name == "content-type" && value == "application/json"));
    assert!(hook.headers.iter().all(|(name, _)| *name == name.to_lowercase()), "{:?}", hook.headers);
    assert_eq!(hook.json(), serde_json::json!({ "id": 42, "kind": "created" }));
    assert!(hook.received_at >= before && hook.received_at <= SystemTime::now());
    assert_eq!((requests[1].method.as_str(), requests[1].path.as_str()), ("GET", "/elsewhere"));
    assert!(requests[1].body.is_empty());
    assert_eq!(receiver.count(), 2);

    receiver.clear();
    assert_eq!(receiver.count(), 0);
    assert!(receiver.requests().is_empty());
}

#[test]
#[should_panic(expected = "not JSON")]
fn json_panics_with_the_body() {
    let receiver = Receiver::start(Behaviour::Ok);
    post(&client(), &receiver.url(), "plain words");
    receiver.requests()[0].json();
}

#[test]
fn status_answers_every_request_and_records_it() {
    let receiver = Receiver::start(Behaviour::Status(503));
    let client = client();
    assert_eq!(post(&client, &receiver.url(), "{}"), 503);
    assert_eq!(post(&client, &receiver.url(), "{}"), 503);
    receiver.set_behaviour(Behaviour::Ok);
    assert_eq!(post(&client, &receiver.url(), "{}"), 200);
    assert_eq!(receiver.count(), 3, "failed answers are recorded too");
}

#[test]
fn fail_first_counts_from_when_it_was_set() {
    let receiver = Receiver::start(Behaviour::FailFirst(2, 500));
    let client = client();
    let statuses: Vec<u16> = (0..4).map(|_| post(&client, &receiver.url(), "{}")).collect();
    assert_eq!(statuses, [500, 500, 200, 200]);
    receiver.set_behaviour(Behaviour::FailFirst(1, 429));
    let statuses: Vec<u16> = (0..2).map(|_| post(&client, &receiver.url(), "{}")).collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(receiver.count(), 6);
}

#[test]
fn delay_records_first_and_answers_later() {
    let receiver = Receiver::start(Behaviour::Delay(Duration::from_millis(300)));
    let url = receiver.url();
    let started = Instant::now();
    let sender = thread::spawn(move || post(&client(), &url, "{}"));
    // Recorded while the sender still waits for its answer.
    assert_eq!(receiver.wait_for(1, WAIT).len(), 1);
    assert!(!sender.is_finished());
    assert_eq!(sender.join().unwrap(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn wait_for_returns_what_arrived_by_the_deadline() {
    let receiver = Receiver::start(Behaviour::Ok);
    let url = receiver.url();
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || post(&client(), &url, "{}"))
        })
        .collect();
    assert_eq!(receiver.wait_for(3, WAIT).len(), 3);
    senders.into_iter().for_each(|sender| assert_eq!(sender.join().unwrap(), 200));
    let started = Instant::now();
    assert_eq!(receiver.wait_for(4, Duration::from_millis(50)).len(), 3, "times out with what there is");
    assert!(started.elapsed() >= Duration::from_millis(50));
}

/// Many requests on one kept-alive connection, written by hand: the connection stays open.
#[test]
fn connections_are_kept_alive() {
    let receiver = Receiver::start(Behaviour::Ok);
    let mut stream = TcpStream::connect(receiver.local_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    for n in 0..50 {
        let body = format!("{{\"n\":{n}}}");
        // One write: several small ones would wait on Nagle's algorithm and delayed ACKs.
        let request = format!("POST /hook HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8];
        while !answer.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            answer.push(byte[0]);
        }
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.to_lowercase().contains("content-length: 0"), "{answer}");
    }
    let requests = receiver.wait_for(50, WAIT);
    assert_eq!(requests.len(), 50);
    assert_eq!(requests[49].json(), serde_json::json!({ "n": 49 }));
}

#[test]
fn dropping_the_receiver_closes_the_port() {
    let receiver = Receiver::start(Behaviour::Ok);
    let addr = receiver.local_addr();
    post(&client(), &receiver.url(), "{}");
    drop(receiver);
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
#[should_panic(expected = "200..=599")]
fn out_of_range_statuses_are_refused() {
    Receiver::start(Behaviour::FailFirst(1, 1000));
}
