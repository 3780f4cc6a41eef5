//! The HTTP side: one thread running a current-thread tokio runtime, accepting connections on
//! the bound listener and serving each with hyper's HTTP/1.1 driver, until told to stop.
//!
//! The runtime lives and dies with the thread: when the stop signal arrives the accept loop
//! ends, the runtime is dropped, and with it every connection task and every delayed answer.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap};
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::decode::{self, Rejection};
use crate::{Behaviour, MAX_BODY_BYTES, Protocol, Request, Shared, TRACES_PATH};

/// Binds the port and starts the server thread.
pub(crate) fn spawn(shared: Arc<Shared>) -> io::Result<(SocketAddr, oneshot::Sender<()>, JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("otlp-receiver-{}", addr.port()))
        .spawn(move || runtime.block_on(serve(listener, shared, stopped)))?;
    Ok((addr, stop, thread))
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            // A send or a dropped sender both mean stop.
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                    // A connection that breaks off mid-request concerns only its client.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Accept errors are per connection (the peer went away) or resource exhaustion;
            // back off briefly so that the latter does not spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn handle(shared: Arc<Shared>, request: hyper::Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let mut record = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        content_type: header(&parts.headers, CONTENT_TYPE.as_str()),
        content_encoding: header(&parts.headers, CONTENT_ENCODING.as_str()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        protocol: None,
        body_len: 0,
        status: 0,
        traces: None,
        error: None,
    };
    record.protocol = decode::protocol(record.content_type.as_deref()).ok();

    let decoded = async {
        if record.path != TRACES_PATH {
            return Err(Rejection::new(404, format!("no such path {:?}; traces go to {TRACES_PATH}", record.path)));
        }
        if parts.method != Method::POST {
            return Err(Rejection::new(405, format!("method {} not allowed; use POST", record.method)));
        }
        let protocol = decode::protocol(record.content_type.as_deref())?;
        let encoding = decode::encoding(record.content_encoding.as_deref())?;
        let bytes = read_body(body).await?;
        record.body_len = bytes.len();
        decode::body(protocol, encoding, &bytes)
    }
    .await;

    let (status, delay) = match decoded {
        Ok(traces) => {
            record.traces = Some(traces);
            match shared.next_step() {
                Behaviour::Fail(status) => (status, None),
                Behaviour::Delay(delay) => (200, Some(delay)),
                // `next_step` never yields a sequence; accept is the only other step.
                Behaviour::Accept | Behaviour::Sequence(_) => (200, None),
            }
        }
        Err(rejection) => {
            record.error = Some(rejection.message.clone());
            (rejection.status, None)
        }
    };
    record.status = status;
    let protocol = record.protocol;
    let response = if status == 200 {
        respond(status, protocol, decode::success_body(protocol.unwrap_or(Protocol::Protobuf)))
    } else {
        let message = record.error.clone().unwrap_or_else(|| format!("failing as told: HTTP {status}"));
        respond(status, protocol, decode::error_body(protocol, status, &message))
    };
    shared.record(record);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    Ok(response)
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
async fn read_body(body: Incoming) -> Result<Bytes, Rejection> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Rejection::new(413, format!("body is over {MAX_BODY_BYTES} bytes")))
        }
        Err(error) => Err(Rejection::new(400, format!("body could not be read: {error}"))),
    }
}

fn respond(status: u16, protocol: Option<Protocol>, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    // Statuses come from the validated behaviour (400..=599) or from the receiver's own list.
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(decode::content_type(protocol)));
    response
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}
