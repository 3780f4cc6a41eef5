//! A real HTTP/1.1 webhook endpoint that tests start in-process.
//!
//! [`Receiver::start`] binds an ephemeral port on `127.0.0.1` and serves it in the background:
//! every request that arrives, whatever its method, path or outcome, is recorded with its
//! headers and body ([`Receiver::requests`]), and answered the way the test asks
//! ([`Behaviour`]): 200 at once, a given status, 200 after a delay, or a status for the first
//! few requests and 200 after them, which is how a test makes a sender retry.
//!
//! What it guarantees:
//!
//! - **Everything is recorded, in arrival order**, the failed answers included, once its body
//!   has been read; a request is recorded before any [`Behaviour::Delay`], so a test sees that
//!   it arrived while its sender still waits for the answer.
//! - **Waiting needs no sleeps.** [`Receiver::wait_for`] wakes up as soon as enough requests
//!   are recorded, up to a deadline.
//! - **It is quick**: hyper's HTTP/1.1 connection driver with keep-alive, on a private
//!   current-thread tokio runtime on one thread named after the port; tens of thousands of
//!   requests a second, from any number of concurrent connections.
//! - **It stops when dropped.** Dropping the [`Receiver`] closes the port and ends every
//!   connection and every delayed answer; nothing outlives it.
//!
//! For benchmarks there is also a `webhook-receiver` program, which answers 200 at once and
//! writes one compact line per request when it is stopped (see its `--help`).

mod server;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The path of [`Receiver::url`]. Requests to other paths are recorded and answered too.
pub const HOOK_PATH: &str = "/hook";

/// The largest request body read (64 MiB); a larger one is answered 413 and recorded without
/// its body, and does not count towards [`Behaviour::FailFirst`].
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// One HTTP request as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `POST`.
    pub method: String,
    /// The path, without the query, e.g. `/hook`.
    pub path: String,
    /// The query string, without the `?`, if the target had one.
    pub query: Option<String>,
    /// Every header in the order sent, names in lower case, once per value (values that are
    /// not UTF-8 are decoded lossily).
    pub headers: Vec<(String, String)>,
    /// The body as received (empty if it was over [`MAX_BODY_BYTES`]).
    pub body: Vec<u8>,
    /// When the request's head was read.
    pub received_at: SystemTime,
}

impl Request {
    /// The first value of header `name`, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    ///
    /// Panics, showing the body, if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "{} {}: the body is not JSON ({error}): {:?}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// 200, empty body.
    Ok,
    /// This status (200..=599); error statuses carry a short text body saying so.
    Status(u16),
    /// Wait this long, then 200. The request is recorded before the wait.
    Delay(Duration),
    /// The first n requests (since this behaviour was set) get the status, the rest 200.
    FailFirst(usize, u16),
}

impl Behaviour {
    /// Panics on a status hyper cannot send as a final answer.
    fn validate(&self) {
        if let Behaviour::Status(status) | Behaviour::FailFirst(_, status) = self {
            assert!((200..=599).contains(status), "webhook-receiver: {self:?}: the status must be in 200..=599");
        }
    }

    /// The status and delay of the answer to the `index`-th request under this behaviour.
    fn answer(&self, index: usize) -> (u16, Option<Duration>) {
        match *self {
            Behaviour::Ok => (200, None),
            Behaviour::Status(status) => (status, None),
            Behaviour::Delay(delay) => (200, Some(delay)),
            Behaviour::FailFirst(n, status) if index < n => (status, None),
            Behaviour::FailFirst(..) => (200, None),
        }
    }
}

/// State shared between the test's threads and the server thread.
struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
}

struct State {
    behaviour: Behaviour,
    /// Requests answered under the current behaviour.
    answered: usize,
    requests: Vec<Request>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is one assignment or one push, so a panic cannot leave it half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `request` and decides its answer, in one step so that the answers follow the
    /// recorded order.
    fn record(&self, request: Request, counts: bool) -> (u16, Option<Duration>) {
        let mut state = self.lock();
        let answer = if counts {
            let answer = state.behaviour.answer(state.answered);
            state.answered += 1;
            answer
        } else {
            (413, None)
        };
        state.requests.push(request);
        drop(state);
        self.arrived.notify_all();
        answer
    }
}

/// A running webhook endpoint on `127.0.0.1` and an ephemeral port.
///
/// Shared freely between threads. Dropping it stops the server and closes the port.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds `127.0.0.1:0` and starts serving in the background, answering as `behaviour`
    /// says. The port is bound when this returns.
    ///
    /// Panics if the port cannot be bound or the server thread cannot start, or on a status
    /// outside 200..=599.
    pub fn start(behaviour: Behaviour) -> Receiver {
        behaviour.validate();
        let shared = Arc::new(Shared {
            state: Mutex::new(State { behaviour, answered: 0, requests: Vec::new() }),
            arrived: Condvar::new(),
        });
        let (addr, stop, thread) = server::spawn(Arc::clone(&shared))
            .unwrap_or_else(|error| panic!("webhook-receiver: cannot start the server: {error}"));
        Receiver { addr, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// The address the receiver listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}{HOOK_PATH}", self.addr)
    }

    /// Replaces the behaviour for the requests that arrive from now on, and restarts the
    /// count [`Behaviour::FailFirst`] goes by. Requests already being answered keep theirs.
    ///
    /// Panics on a status outside 200..=599.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        behaviour.validate();
        let mut state = self.shared.lock();
        state.behaviour = behaviour;
        state.answered = 0;
    }

    /// Every request recorded so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// How many requests have been recorded.
    pub fn count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Waits until at least `n` requests have been recorded or `timeout` has passed, and
    /// returns every request recorded by then: check its length to tell which.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        while state.requests.len() < n {
            let now = Instant::now();
            let remaining = match deadline {
                Some(deadline) if deadline <= now => break,
                Some(deadline) => deadline - now,
                // A timeout too long to represent: wait as long as it takes.
                None => Duration::from_secs(3600),
            };
            // Woken by every recorded request; the 10 ms cap is only a safety net.
            let wait = remaining.min(Duration::from_millis(10));
            state = self.shared.arrived.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
        }
        state.requests.clone()
    }

    /// Forgets every request recorded so far, and restarts the count [`Behaviour::FailFirst`]
    /// goes by.
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        state.requests.clear();
        state.answered = 0;
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server thread may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported on stderr; re-raising it
            // from a destructor could abort the test process instead of failing the test.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Receiver>();
    }

    #[test]
    fn fail_first_fails_exactly_n() {
        let behaviour = Behaviour::FailFirst(2, 503);
        let statuses: Vec<u16> = (0..4).map(|index| behaviour.answer(index).0).collect();
        assert_eq!(statuses, [503, 503, 200, 200]);
        assert_eq!(Behaviour::Delay(Duration::from_millis(5)).answer(0), (200, Some(Duration::from_millis(5))));
    }

    #[test]
    #[should_panic(expected = "200..=599")]
    fn informational_statuses_are_refused() {
        Behaviour::Status(101).validate();
    }
}
