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
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::{MAX_BODY_BYTES, Request, Shared};

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
        .name(format!("webhook-receiver-{}", addr.port()))
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
                // Small answers on kept-alive connections: never hold one back for Nagle.
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                    // A connection that breaks off mid-request concerns only its client.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Accept errors are per connection (the peer went away) or resource exhaustion
            // (out of file descriptors); back off briefly so that the latter does not spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn handle(shared: Arc<Shared>, request: hyper::Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let received_at = SystemTime::now();
    let (parts, body) = request.into_parts();
    let (body, within_limit) = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => (collected.to_bytes().to_vec(), true),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => (Vec::new(), false),
        // The client broke off mid-body: there is no one to answer, and nothing to record.
        Err(_) => return Ok(respond(400)),
    };
    let record = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body,
        received_at,
    };
    let (status, delay) = shared.record(record, within_limit);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    Ok(respond(status))
}

/// An answer with `status`: an empty body for 2xx, a line saying why for the others.
fn respond(status: u16) -> Response<Full<Bytes>> {
    let body = if (200..300).contains(&status) {
        Bytes::new()
    } else {
        Bytes::from(format!("webhook-receiver answers {status}\n"))
    };
    let mut response = Response::new(Full::new(body));
    // Statuses are validated to 200..=599 when a behaviour is set.
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}
