//! A minimal HTTP/1.1 client for the webhooks: plain-HTTP POSTs over keep-alive connections
//! pooled per `host:port`.
//!
//! It is made for the `act` node, which sends thousands of requests a second from a
//! current-thread runtime that the pipeline thread drives with `block_on`. The request future
//! does all the work itself: it takes an idle connection from the pool (or connects), writes
//! the whole request with one write, reads and parses the response ([`httparse`]), and puts the
//! connection back. No task is spawned and nothing goes through a channel, so a [`Client`] is
//! used from one thread (it is `Send`, not `Sync`); its connections belong to the runtime that
//! made them and must be used on it.
//!
//! What it does, and what it leaves out:
//!
//! - **Requests**: `POST` with `Host`, `Content-Length`, the caller's headers and a
//!   `User-Agent` unless the caller gave one. Header names must be tokens and values hold no CR,
//!   LF or NUL, so nothing the caller passes can inject a header or a request.
//! - **Responses**: 1xx answers are passed over; the body is framed by `Transfer-Encoding:
//!   chunked` (trailers ignored), `Content-Length` or the end of the connection; 204 and 304
//!   have none. The head may be at most 64 KiB. Only the first `keep_body` bytes of the body
//!   are kept; a body longer than 64 KiB is not read to its end: its connection is closed.
//! - **Keep-alive**: a connection is used again only if its response was read to the end and
//!   neither side said `Connection: close` (an HTTP/1.0 answer must say `keep-alive`).
//! - **No** TLS, redirects, proxies, compression, `Expect: 100-continue` or pipelining.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest response head (status line and headers), and the longest trailer section.
const MAX_HEAD: usize = 64 * 1024;

/// The longest body read to its end so that its connection can be used again.
const MAX_DRAIN: u64 = 64 * 1024;

/// The longest chunk-size line (the size and its extensions).
const MAX_CHUNK_LINE: usize = 4096;

/// How much room a read gets at least.
const READ_CHUNK: usize = 8 * 1024;

/// A connection whose buffers grew beyond this (a huge body, a huge head) goes back to the pool
/// with fresh ones.
const MAX_KEPT_BUFFER: usize = 256 * 1024;

/// Response headers parsed without allocating; more take a second parse.
const STACK_HEADERS: usize = 32;

const USER_AGENT: &str = concat!("hopline/", env!("CARGO_PKG_VERSION"));

/// A client for plain-HTTP POSTs, with keep-alive connections pooled per host:port.
///
/// Its connections belong to the tokio runtime they were made on (which needs its I/O and
/// time drivers: `enable_all`): use a client on one runtime, as long as that runtime lives. A
/// pooled connection used on another runtime fails with [`Error::Io`]. A host name (not an IP
/// address) is resolved on the runtime's blocking pool when a connection is made.
pub struct Client {
    max_idle_per_host: usize,
    /// Idle connections by `Url::authority`, the most recently used last.
    idle: RefCell<HashMap<Box<str>, Vec<Conn>>>,
}

impl Client {
    /// A client that keeps at most `max_idle_per_host` idle connections to each host:port (0:
    /// a new connection for every request).
    pub fn new(max_idle_per_host: usize) -> Client {
        Client { max_idle_per_host, idle: RefCell::new(HashMap::new()) }
    }

    /// POSTs `body` to `url` (http:// only; the caller has checked) with `headers` (name, value) in addition to
    /// Host, Content-Length and, unless given, User-Agent `hopline/<version>`. The whole exchange (connect, write,
    /// read the head and up to `keep_body` bytes of the body) must finish within `timeout`.
    ///
    /// `headers` may not set Host, Content-Length or Transfer-Encoding, and must be valid
    /// (names are tokens; values hold no CR, LF or NUL): otherwise [`Error::Protocol`], before
    /// anything is sent.
    ///
    /// A pooled connection may have been closed by the server while it sat idle, which shows
    /// only when it is used. So when writing the request to a reused connection fails, or the
    /// connection ends or is reset before a single byte of the answer arrived, the request is
    /// sent again, once, on a new connection. That is safe because nothing was received: a
    /// server that closes an idle connection has not read the request on it, so it does not
    /// act on it twice. The one exception is a server that read the request and then closed
    /// the connection without a byte of answer (it crashed, say): it gets the request twice,
    /// the duplicate any retry risks (webhooks are delivered at least once anyway). A failure
    /// on a new connection, or after any byte of the answer, is never retried.
    pub async fn post(
        &self,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
        keep_body: usize,
    ) -> Result<Response, Error> {
        check_headers(headers)?;
        // On timeout the exchange's future is dropped, and its connection with it.
        match tokio::time::timeout(timeout, self.exchange(url, headers, body, keep_body)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout),
        }
    }

    async fn exchange(
        &self,
        url: &Url,
        headers: &[(&str, &str)],
        body: &[u8],
        keep_body: usize,
    ) -> Result<Response, Error> {
        let (mut conn, reused) = match self.take_idle(url) {
            Some(conn) => (conn, true),
            None => (Conn::connect(url).await?, false),
        };
        conn.write_request(url, headers, body);
        let outcome = match conn.round_trip(keep_body).await {
            // Nothing of an answer arrived: see `post`.
            Err(failure) if reused && failure.retryable => {
                let mut fresh = Conn::connect(url).await?;
                std::mem::swap(&mut fresh.out, &mut conn.out);
                conn = fresh;
                conn.round_trip(keep_body).await
            }
            outcome => outcome,
        };
        let (response, reusable) = outcome.map_err(|failure| failure.error)?;
        if reusable
            && !headers.iter().any(|(name, value)| name.eq_ignore_ascii_case("connection") && has_token(value, "close"))
        {
            self.put_idle(url, conn);
        }
        Ok(response)
    }

    /// The most recently used idle connection to `url`'s host that still looks open.
    fn take_idle(&self, url: &Url) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(url.authority.as_str())?;
        while let Some(conn) = list.pop() {
            if conn.looks_open() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, url: &Url, mut conn: Conn) {
        if self.max_idle_per_host == 0 {
            return;
        }
        if conn.out.capacity() > MAX_KEPT_BUFFER {
            conn.out = Vec::new();
        }
        if conn.input.capacity() > MAX_KEPT_BUFFER {
            conn.input = Vec::new();
        }
        let mut idle = self.idle.borrow_mut();
        match idle.get_mut(url.authority.as_str()) {
            Some(list) => {
                if list.len() < self.max_idle_per_host {
                    list.push(conn);
                }
            }
            None => {
                idle.insert(url.authority.as_str().into(), vec![conn]);
            }
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Client");
        debug.field("max_idle_per_host", &self.max_idle_per_host);
        if let Ok(idle) = self.idle.try_borrow() {
            debug.field("idle", &idle.values().map(Vec::len).sum::<usize>());
        }
        debug.finish_non_exhaustive()
    }
}

/// An `http://host[:port][/path][?query]` URL, parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    /// In lower case; an IPv6 address without its brackets.
    host: String,
    /// The host, if it is an IP address.
    ip: Option<IpAddr>,
    port: u16,
    /// `host[:port]` as the `Host` header says it (the port only if not 80, an IPv6 address
    /// in brackets); also the pool's key.
    authority: String,
    /// The request target: the path (`/` at least) and the query, percent-encoded where needed.
    target: String,
    /// The length of the path in `target`.
    path_len: usize,
}

impl Url {
    /// Parses `http://host[:port][/path][?query][#fragment]` (the fragment is dropped). Hosts
    /// are names, IPv4 addresses or IPv6 addresses in brackets; spaces, control and non-ASCII
    /// characters in the path and query are percent-encoded. Refuses other schemes (https
    /// too) and credentials (`user:pass@`). Errors do not repeat the URL: it may hold secrets.
    pub fn parse(text: &str) -> Result<Url, String> {
        let text = text.trim_matches(|c: char| c <= ' ');
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err("expected an http:// URL".into());
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err("https is not supported; expected an http:// URL".into());
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err("expected an http:// URL".into());
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = rest.split_at(rest.find(['/', '?', '\\']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err("credentials in the URL (user:pass@) are not supported".into());
        }
        let (host, ip, port) = parse_authority(authority)?;
        let authority = match (ip, port) {
            (Some(IpAddr::V6(_)), 80) => format!("[{host}]"),
            (Some(IpAddr::V6(_)), _) => format!("[{host}]:{port}"),
            (_, 80) => host.clone(),
            _ => format!("{host}:{port}"),
        };
        let mut encoded = String::with_capacity(target.len() + 1);
        if !target.starts_with(['/', '\\']) {
            encoded.push('/');
        }
        let mut path_len = None;
        for (i, byte) in target.bytes().enumerate() {
            match byte {
                b'?' if path_len.is_none() => {
                    path_len = Some(encoded.len());
                    encoded.push('?');
                }
                b'\\' if path_len.is_none() => encoded.push('/'),
                // `%` followed by two hex digits stays as it is; otherwise it is encoded.
                b'%' if target.as_bytes().get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => {
                    encoded.push('%')
                }
                b'!' | b'$' | b'&'..=b';' | b'=' | b'?'..=b'[' | b']' | b'^' | b'_' | b'a'..=b'z' | b'|' | b'~' => {
                    encoded.push(byte as char)
                }
                _ => {
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    encoded.push('%');
                    encoded.push(HEX[usize::from(byte >> 4)] as char);
                    encoded.push(HEX[usize::from(byte & 15)] as char);
                }
            }
        }
        let path_len = path_len.unwrap_or(encoded.len());
        Ok(Url { host, ip, port, authority, target: encoded, path_len })
    }

    /// The host in lower case; an IPv6 address without brackets (`::1`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: 80 unless the URL gave one.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path, `/` at least; without the query.
    pub fn path(&self) -> &str {
        &self.target[..self.path_len]
    }
}

/// Shows the host and port only: the path and query may hold secrets.
impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Url").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

/// `host[:port]` → (host, its IP address if it is one, port).
fn parse_authority(authority: &str) -> Result<(String, Option<IpAddr>, u16), String> {
    let (host, ip, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((address, port)) = bracketed.split_once(']') else {
            return Err("the URL's IPv6 address lacks its `]`".into());
        };
        let ip: Ipv6Addr =
            address.parse().map_err(|_| "the URL's IPv6 address is not valid (zones are not supported)")?;
        let port = match port {
            "" => None,
            _ => {
                Some(port.strip_prefix(':').ok_or("the URL's IPv6 address is followed by something else than a port")?)
            }
        };
        (ip.to_string(), Some(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
            return Err("the URL's host is not a valid host name or address".into());
        }
        let ip = host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
        (host.to_ascii_lowercase(), ip, port)
    };
    let port = match port {
        None | Some("") => 80,
        Some(digits) if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => match digits.parse() {
            Ok(0) | Err(_) => return Err("the URL's port is not in 1..=65535".into()),
            Ok(port) => port,
        },
        Some(_) => return Err("the URL's port is not a number".into()),
    };
    Ok((host, ip, port))
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// In the order received, names in lower case (values that are not UTF-8 decoded lossily).
    pub headers: Vec<(String, String)>,
    /// The first `keep_body` bytes of the body, at most.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Why a request failed. Its text is short and never holds the URL.
#[derive(Debug)]
pub enum Error {
    /// The host could not be resolved or connected to; nothing was sent.
    Connect(io::Error),
    /// The whole exchange took longer than its timeout.
    Timeout,
    /// Sending or receiving failed, or the connection ended early.
    Io(io::Error),
    /// A request header was refused (nothing was sent), or the answer is not valid HTTP/1.x.
    Protocol(String),
}

impl Error {
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_))
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    fn protocol(message: &str) -> Error {
        Error::Protocol(message.to_owned())
    }
}

/// The text includes the I/O error's own (and `source` is `None`, so that it is said once).
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "cannot connect: {e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Io(e) => write!(f, "connection failed: {e}"),
            Error::Protocol(message) => write!(f, "protocol error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

/// Refuses headers that could inject a header or a request, or that the client sets itself.
fn check_headers(headers: &[(&str, &str)]) -> Result<(), Error> {
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Error::protocol("a request header's name is not a valid token"));
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(Error::protocol("a request header's value holds CR, LF or NUL"));
        }
        for ours in ["host", "content-length", "transfer-encoding"] {
            if name.eq_ignore_ascii_case(ours) {
                return Err(Error::protocol("Host, Content-Length and Transfer-Encoding are set by the client"));
            }
        }
    }
    Ok(())
}

/// RFC 9110's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether comma-separated `list` holds `token` (without regard to case).
fn has_token(list: &str, token: &str) -> bool {
    list.split(',').any(|item| item.trim().eq_ignore_ascii_case(token))
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A request that failed, and whether it may be sent again on a new connection: only if
/// nothing of an answer arrived and the connection was closed or reset.
struct Failure {
    error: Error,
    retryable: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure { error, retryable: false }
    }
}

/// Whether an I/O error says the peer closed or reset the connection.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn closed_early(what: &str) -> Failure {
    Error::Io(io::Error::new(io::ErrorKind::UnexpectedEof, what)).into()
}

/// A connection and its buffers, which live as long as it does.
struct Conn {
    stream: TcpStream,
    /// The request being sent.
    out: Vec<u8>,
    /// Bytes received; those before `start` have been used.
    input: Vec<u8>,
    start: usize,
    /// Whether any byte of the current answer arrived.
    received: bool,
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilEof,
}

/// A parsed response head.
#[derive(Debug)]
struct Head {
    /// Its length in bytes.
    len: usize,
    status: u16,
    /// Empty for an interim (1xx) answer.
    headers: Vec<(String, String)>,
    framing: Framing,
    /// The connection cannot carry another request after this answer.
    close: bool,
}

/// The body as it is read.
struct Body {
    kept: Vec<u8>,
    keep: usize,
    read: u64,
    /// Known to be longer than [`MAX_DRAIN`].
    long: bool,
}

impl Body {
    fn take(&mut self, bytes: &[u8]) {
        self.read += bytes.len() as u64;
        let room = self.keep - self.kept.len();
        self.kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// Everything wanted has been kept and the rest is too long to read through.
    fn done_with(&self) -> bool {
        self.kept.len() >= self.keep && (self.long || self.read > MAX_DRAIN)
    }
}

impl Conn {
    async fn connect(url: &Url) -> Result<Conn, Error> {
        let stream = match url.ip {
            Some(ip) => TcpStream::connect(SocketAddr::new(ip, url.port)).await,
            None => TcpStream::connect((url.host.as_str(), url.port)).await,
        }
        .map_err(Error::Connect)?;
        stream.set_nodelay(true).map_err(Error::Connect)?;
        Ok(Conn { stream, out: Vec::new(), input: Vec::new(), start: 0, received: false })
    }

    /// False if the peer closed the connection, reset it or sent something unasked while it
    /// was idle (as far as the runtime has noticed: a close still in flight is caught by the
    /// retry in [`Client::exchange`]).
    fn looks_open(&self) -> bool {
        matches!(self.stream.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn write_request(&mut self, url: &Url, headers: &[(&str, &str)], body: &[u8]) {
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(url.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(url.authority.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_decimal(out, body.len());
        out.extend_from_slice(b"\r\n");
        let mut user_agent = false;
        for (name, value) in headers {
            user_agent |= name.eq_ignore_ascii_case("user-agent");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !user_agent {
            out.extend_from_slice(b"User-Agent: ");
            out.extend_from_slice(USER_AGENT.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }

    /// Sends the request in `out` and reads the answer; whether the connection can be used
    /// again.
    async fn round_trip(&mut self, keep_body: usize) -> Result<(Response, bool), Failure> {
        self.input.clear();
        self.start = 0;
        self.received = false;
        if let Err(e) = self.stream.write_all(&self.out).await {
            let retryable = is_closed(&e);
            return Err(Failure { error: Error::Io(e), retryable });
        }
        let head = loop {
            let head = self.read_head().await?;
            self.start += head.len;
            match head.status {
                101 => return Err(Error::protocol("the server switched protocols").into()),
                100..=199 => continue,
                _ => break head,
            }
        };
        let mut body = Body {
            kept: Vec::new(),
            keep: keep_body,
            read: 0,
            long: matches!(head.framing, Framing::Length(n) if n > MAX_DRAIN),
        };
        let complete = match head.framing {
            Framing::Empty => true,
            Framing::Length(n) => {
                body.kept.reserve_exact(keep_body.min(usize::try_from(n).unwrap_or(usize::MAX)));
                self.read_body(n, &mut body).await?
            }
            Framing::Chunked => self.read_chunked(&mut body).await?,
            Framing::UntilEof => self.read_to_end(&mut body).await?,
        };
        let reusable = complete && !head.close && head.framing != Framing::UntilEof && self.start == self.input.len();
        Ok((Response { status: head.status, headers: head.headers, body: body.kept }, reusable))
    }

    /// Reads more; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> Result<usize, Failure> {
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        if self.input.capacity() - self.input.len() < READ_CHUNK / 4 {
            self.input.reserve(READ_CHUNK);
        }
        match self.stream.read_buf(&mut self.input).await {
            Ok(n) => {
                self.received |= n > 0;
                Ok(n)
            }
            Err(e) => {
                let retryable = !self.received && is_closed(&e);
                Err(Failure { error: Error::Io(e), retryable })
            }
        }
    }

    /// Reads more; the end of the stream is an error.
    async fn fill_more(&mut self) -> Result<(), Failure> {
        match self.fill().await? {
            0 => Err(closed_early("the connection closed before the end of the response")),
            _ => Ok(()),
        }
    }

    async fn read_head(&mut self) -> Result<Head, Failure> {
        loop {
            let available = &self.input[self.start..];
            if !available.is_empty() {
                if let Some(head) = parse_head(&available[..available.len().min(MAX_HEAD)])? {
                    return Ok(head);
                }
                if available.len() >= MAX_HEAD {
                    return Err(Error::protocol("the response head is over 64 KiB").into());
                }
            }
            if self.fill().await? == 0 {
                return Err(if self.received {
                    closed_early("the connection closed in the middle of the response head")
                } else {
                    let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection");
                    Failure { error: Error::Io(closed), retryable: true }
                });
            }
        }
    }

    /// Reads `n` bytes of the body; false if it stopped before them (see [`Body::done_with`]).
    async fn read_body(&mut self, mut n: u64, body: &mut Body) -> Result<bool, Failure> {
        while n > 0 {
            if body.done_with() {
                return Ok(false);
            }
            if self.start == self.input.len() {
                self.fill_more().await?;
            }
            let take = (self.input.len() - self.start).min(usize::try_from(n).unwrap_or(usize::MAX));
            body.take(&self.input[self.start..self.start + take]);
            self.start += take;
            n -= take as u64;
        }
        Ok(true)
    }

    async fn read_chunked(&mut self, body: &mut Body) -> Result<bool, Failure> {
        loop {
            if body.done_with() {
                return Ok(false);
            }
            let size = loop {
                let available = &self.input[self.start..];
                // httparse takes an empty line for a size of 0.
                if available.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                    return Err(Error::protocol("invalid chunk size").into());
                }
                match httparse::parse_chunk_size(available) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.start += len;
                        break size;
                    }
                    Ok(httparse::Status::Partial) if available.len() > MAX_CHUNK_LINE => {
                        return Err(Error::protocol("a chunk size line is too long").into());
                    }
                    Ok(httparse::Status::Partial) => self.fill_more().await?,
                    Err(_) => return Err(Error::protocol("invalid chunk size").into()),
                }
            };
            if size == 0 {
                self.skip_trailers().await?;
                return Ok(true);
            }
            if !self.read_body(size, body).await? {
                return Ok(false);
            }
            while self.input.len() - self.start < 2 {
                self.fill_more().await?;
            }
            if &self.input[self.start..self.start + 2] != b"\r\n" {
                return Err(Error::protocol("a chunk does not end with CRLF").into());
            }
            self.start += 2;
        }
    }

    /// Passes over the trailer section and the empty line that ends it.
    async fn skip_trailers(&mut self) -> Result<(), Failure> {
        let mut length = 0;
        loop {
            let available = &self.input[self.start..];
            match available.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let line = &available[..end];
                    self.start += end + 1;
                    if line.is_empty() || line == b"\r" {
                        return Ok(());
                    }
                    length += end + 1;
                }
                None => self.fill_more().await?,
            }
            if length + self.input.len() - self.start > MAX_HEAD {
                return Err(Error::protocol("the trailers are over 64 KiB").into());
            }
        }
    }

    /// Reads the body up to the end of the stream; false if it stopped before.
    async fn read_to_end(&mut self, body: &mut Body) -> Result<bool, Failure> {
        loop {
            body.take(&self.input[self.start..]);
            self.start = self.input.len();
            if body.done_with() {
                return Ok(false);
            }
            if self.fill().await? == 0 {
                return Ok(true);
            }
        }
    }
}

/// What came of parsing with a given number of header slots.
enum Parsed {
    Head(Option<Head>),
    TooManyHeaders,
}

/// The response head at the start of `buf`, if it is all there.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Error> {
    let mut slots = [httparse::EMPTY_HEADER; STACK_HEADERS];
    match parse_head_with(buf, &mut slots)? {
        Parsed::Head(head) => Ok(head),
        Parsed::TooManyHeaders => {
            // Every header takes a line (the last one may be incomplete).
            let lines = buf.iter().filter(|&&b| b == b'\n').count() + 1;
            let mut slots = vec![httparse::EMPTY_HEADER; lines];
            match parse_head_with(buf, &mut slots)? {
                Parsed::Head(head) => Ok(head),
                Parsed::TooManyHeaders => Err(Error::protocol("too many headers")),
            }
        }
    }
}

fn parse_head_with<'b>(buf: &'b [u8], slots: &mut [httparse::Header<'b>]) -> Result<Parsed, Error> {
    let mut response = httparse::Response::new(slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Head(None)),
        Err(httparse::Error::TooManyHeaders) => return Ok(Parsed::TooManyHeaders),
        Err(e) => return Err(Error::Protocol(format!("invalid response head ({e})"))),
    };
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(Error::protocol("invalid response head"));
    };
    if (100..200).contains(&status) {
        return Ok(Parsed::Head(Some(Head {
            len,
            status,
            headers: Vec::new(),
            framing: Framing::Empty,
            close: false,
        })));
    }
    let mut length: Option<u64> = None;
    // Whether the last transfer coding is `chunked`, if there is a Transfer-Encoding.
    let mut chunked: Option<bool> = None;
    let (mut said_close, mut said_keep_alive) = (false, false);
    let mut headers = Vec::with_capacity(response.headers.len());
    for header in response.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(&value).ok_or_else(|| Error::protocol("invalid Content-Length"))?;
            if length.is_some_and(|known| known != n) {
                return Err(Error::protocol("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if let Some(last) = value.rsplit(',').map(str::trim).find(|coding| !coding.is_empty()) {
                chunked = Some(last.eq_ignore_ascii_case("chunked"));
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            said_close |= has_token(&value, "close");
            said_keep_alive |= has_token(&value, "keep-alive");
        }
        headers.push((header.name.to_ascii_lowercase(), value.into_owned()));
    }
    let mut close = said_close || (version == 0 && !said_keep_alive);
    let framing = match (status, chunked, length) {
        (204 | 304, _, _) => Framing::Empty,
        (_, Some(true), length) => {
            // Both: a message made to smuggle requests, or a broken proxy; read it the way
            // RFC 9112 says, and do not trust the connection after it.
            close |= length.is_some();
            Framing::Chunked
        }
        (_, Some(false), _) | (_, None, None) => Framing::UntilEof,
        (_, None, Some(n)) => Framing::Length(n),
    };
    Ok(Parsed::Head(Some(Head { len, status, headers, framing, close })))
}

/// `n`, or `n, n, …` (a list that a proxy merged; all the same).
fn parse_content_length(value: &str) -> Option<u64> {
    let mut length = None;
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() || item.len() > 19 || !item.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = item.parse().ok()?;
        if length.is_some_and(|known| known != n) {
            return None;
        }
        length = Some(n);
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn urls_parse_into_host_port_and_target() {
        let u = url("http://Hooks.Example.com/in/x?token=abc&b=1#frag");
        assert_eq!((u.host(), u.port(), u.path()), ("hooks.example.com", 80, "/in/x"));
        assert_eq!(u.target, "/in/x?token=abc&b=1");
        assert_eq!(u.authority, "hooks.example.com");
        assert_eq!(u.ip, None);

        let u = url("HTTP://127.0.0.1:8080");
        assert_eq!((u.host(), u.port(), u.path(), u.target.as_str()), ("127.0.0.1", 8080, "/", "/"));
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));

        let u = url("http://host:80?q=1");
        assert_eq!((u.port(), u.path(), u.target.as_str(), u.authority.as_str()), (80, "/", "/?q=1", "host"));
        assert_eq!(url("http://host:/p").port(), 80);
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_the_host_header_only() {
        let u = url("http://[::1]:8080/hook?x=1");
        assert_eq!((u.host(), u.port(), u.path()), ("::1", 8080, "/hook"));
        assert_eq!(u.authority, "[::1]:8080");
        assert_eq!(u.ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let u = url("http://[2001:DB8::1]/");
        assert_eq!((u.host(), u.port(), u.authority.as_str()), ("2001:db8::1", 80, "[2001:db8::1]"));
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for (text, expected) in [
            ("https://host/x", "https is not supported"),
            ("ftp://host/x", "expected an http:// URL"),
            ("host/x", "expected an http:// URL"),
            ("http://user:secret@host/x", "credentials"),
            ("http://secret@host/x", "credentials"),
            ("http:///x", "no host"),
            ("http://host:99999/", "1..=65535"),
            ("http://host:0/", "1..=65535"),
            ("http://host:8o/", "not a number"),
            ("http://[::1/", "`]`"),
            ("http://[::1]x/", "port"),
            ("http://[fe80::1%25eth0]/", "not valid"),
            ("http://ho st/", "not a valid host"),
            ("http://hôst/", "not a valid host"),
        ] {
            let error = Url::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains("secret"), "{text}: {error}");
        }
    }

    #[test]
    fn targets_are_percent_encoded_where_needed() {
        let u = url("http://h/a b/é?q=<x> y&p=%2F&bad=%zz\r\n");
        assert_eq!(u.target, "/a%20b/%C3%A9?q=%3Cx%3E%20y&p=%2F&bad=%25zz");
        assert_eq!(u.path(), "/a%20b/%C3%A9");
        assert_eq!(url("http://h/a\r\nX-Injected: 1").target, "/a%0D%0AX-Injected:%201");
        assert_eq!(url("http://h\\a\\b?c\\d").target, "/a/b?c%5Cd");
        assert_eq!(url("http://h/x?a?b").target, "/x?a?b");
    }

    #[test]
    fn url_debug_hides_the_path_and_query() {
        let shown = format!("{:?}", url("http://h:81/secret?token=abc"));
        assert_eq!(shown, r#"Url { host: "h", port: 81, .. }"#);
    }

    #[test]
    fn headers_that_could_inject_are_refused() {
        for headers in [
            [("X-A", "1\r\nX-B: 2")],
            [("X-A", "1\n")],
            [("X-A", "1\r")],
            [("X-A", "a\0")],
            [("X-A\r\nX-B", "1")],
            [("X A", "1")],
            [("X-A:", "1")],
            [("", "1")],
            [("content-length", "5")],
            [("Host", "elsewhere")],
            [("Transfer-Encoding", "chunked")],
        ] {
            assert!(matches!(check_headers(&headers), Err(Error::Protocol(_))), "{headers:?}");
        }
        assert!(check_headers(&[("X-Signature", "t=1,v1=ab"), ("Authorization", "Bearer x\ty")]).is_ok());
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 12345, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().expect("complete")
    }

    #[test]
    fn heads_give_the_framing_and_whether_the_connection_closes() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A: b\r\n\r\nbody");
        assert_eq!((h.status, h.framing, h.close, h.len), (200, Framing::Length(12), false, 47));
        assert_eq!(h.headers, [("content-length".into(), "12".into()), ("x-a".into(), "b".into())]);

        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Chunked, false));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Chunked, true));
        assert_eq!(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").framing, Framing::UntilEof);
        assert_eq!(head("HTTP/1.1 200 OK\r\n\r\n").framing, Framing::UntilEof);
        assert_eq!(head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").framing, Framing::Empty);
        assert_eq!(head("HTTP/1.1 304 Not Modified\r\n\r\n").framing, Framing::Empty);
        assert_eq!(head("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n").framing, Framing::Length(4));

        assert!(head("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n").close);
        assert!(head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").close);
        assert!(!head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").close);

        assert_eq!(head("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").status, 200);
        assert_eq!(head("HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n").status, 503);

        let h = head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n");
        assert_eq!((h.status, h.len, h.framing), (100, 25, Framing::Empty));
    }

    #[test]
    fn partial_and_invalid_heads() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap().is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(matches!(parse_head(bad.as_bytes()), Err(Error::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn many_headers_are_parsed_past_the_stack_slots() {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..500 {
            text.push_str(&format!("X-{i}: {i}\r\n"));
        }
        assert!(parse_head(text.as_bytes()).unwrap().is_none(), "not yet complete");
        text.push_str("Content-Length: 0\r\n\r\n");
        let h = head(&text);
        assert_eq!(h.headers.len(), 501);
        assert_eq!(h.headers[499], ("x-499".into(), "499".into()));
    }

    #[test]
    fn bodies_stop_once_kept_when_too_long_to_drain() {
        let mut body = Body { kept: Vec::new(), keep: 3, read: 0, long: false };
        body.take(b"abcdef");
        assert_eq!((body.kept.as_slice(), body.read, body.done_with()), (&b"abc"[..], 6, false));
        body.take(&[0; MAX_DRAIN as usize]);
        assert!(body.done_with());
        let body = Body { kept: Vec::new(), keep: 0, read: 0, long: true };
        assert!(body.done_with());
    }

    #[test]
    fn an_idle_connection_the_server_closed_is_seen_closed() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = url(&format!("http://{}/", listener.local_addr().unwrap()));
        rt.block_on(async {
            let conn = Conn::connect(&target).await.unwrap();
            let (peer, _) = listener.accept().unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(conn.looks_open());
            drop(peer);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(!conn.looks_open());
        });
    }

    #[test]
    fn the_client_is_send_and_shows_its_pool() {
        fn send<T: Send>() {}
        send::<Client>();
        assert_eq!(format!("{:?}", Client::new(4)), "Client { max_idle_per_host: 4, idle: 0, .. }");
        let error = Error::Io(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(error.to_string(), "connection failed: reset");
        assert_eq!(Error::Timeout.to_string(), "timed out");
        assert!(Error::Timeout.is_timeout() && !Error::Timeout.is_connect());
    }
}
