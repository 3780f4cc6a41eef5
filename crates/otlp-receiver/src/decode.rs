//! From a request's headers and body bytes to an [`ExportTraceServiceRequest`], and from an
//! outcome to the response body, in the encodings OTLP/HTTP defines.
//!
//! Everything here is synchronous and I/O-free, so each rule is tested on bytes alone.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::{ExportTraceServiceRequest, MAX_BODY_BYTES, Protocol};

/// Why a request was not accepted, with the status that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl Rejection {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Rejection {
        Rejection { status, message: message.into() }
    }
}

/// The protocol named by a `Content-Type` value: its media type, without parameters such as
/// `charset`, compared without regard to case.
pub(crate) fn protocol(content_type: Option<&str>) -> Result<Protocol, Rejection> {
    let Some(content_type) = content_type else {
        return Err(Rejection::new(415, "no Content-Type; expected application/x-protobuf or application/json"));
    };
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/x-protobuf") {
        Ok(Protocol::Protobuf)
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Ok(Protocol::Json)
    } else {
        Err(Rejection::new(
            415,
            format!("unsupported Content-Type {content_type:?}; expected application/x-protobuf or application/json"),
        ))
    }
}

/// A `Content-Encoding` the receiver can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
}

pub(crate) fn encoding(content_encoding: Option<&str>) -> Result<Encoding, Rejection> {
    match content_encoding.map(str::trim) {
        None => Ok(Encoding::Identity),
        Some(value) if value.is_empty() || value.eq_ignore_ascii_case("identity") => Ok(Encoding::Identity),
        Some(value) if value.eq_ignore_ascii_case("gzip") => Ok(Encoding::Gzip),
        Some(value) => {
            Err(Rejection::new(415, format!("unsupported Content-Encoding {value:?}; expected gzip or none")))
        }
    }
}

/// Decompresses (when asked), decodes and checks one body.
pub(crate) fn body(
    protocol: Protocol,
    encoding: Encoding,
    body: &[u8],
) -> Result<ExportTraceServiceRequest, Rejection> {
    let inflated;
    let bytes = match encoding {
        Encoding::Identity => body,
        Encoding::Gzip => {
            inflated = gunzip(body)?;
            &inflated[..]
        }
    };
    let request = match protocol {
        Protocol::Protobuf => ExportTraceServiceRequest::decode(bytes)
            .map_err(|error| Rejection::new(400, format!("protobuf body does not decode: {error}")))?,
        Protocol::Json => serde_json::from_slice(bytes)
            .map_err(|error| Rejection::new(400, format!("OTLP/JSON body does not decode: {error}")))?,
    };
    check_ids(&request)?;
    Ok(request)
}

/// Inflates a gzip body, refusing to grow past [`MAX_BODY_BYTES`].
fn gunzip(body: &[u8]) -> Result<Vec<u8>, Rejection> {
    let limit = u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|error| Rejection::new(400, format!("gzip body does not decompress: {error}")))?;
    if inflated.len() > MAX_BODY_BYTES {
        return Err(Rejection::new(413, format!("body decompresses to more than {MAX_BODY_BYTES} bytes")));
    }
    Ok(inflated)
}

/// Trace ids must be 16 bytes and span ids 8, neither all zeroes; a parent span id is empty
/// (a root span) or a valid span id. Links are held to the same rules.
fn check_ids(request: &ExportTraceServiceRequest) -> Result<(), Rejection> {
    let check = |what: &str, name: &str, id: &[u8], len: usize, may_be_empty: bool| {
        if (may_be_empty && id.is_empty()) || (id.len() == len && id.iter().any(|&byte| byte != 0)) {
            Ok(())
        } else {
            Err(Rejection::new(
                400,
                format!("span {name:?}: invalid {what} {} ({} bytes; expected {len}, not all zero)", hex(id), id.len()),
            ))
        }
    };
    let spans = request.resource_spans.iter().flat_map(|resource| &resource.scope_spans).flat_map(|scope| &scope.spans);
    for span in spans {
        check("trace id", &span.name, &span.trace_id, 16, false)?;
        check("span id", &span.name, &span.span_id, 8, false)?;
        check("parent span id", &span.name, &span.parent_span_id, 8, true)?;
        for link in &span.links {
            check("link trace id", &span.name, &link.trace_id, 16, false)?;
            check("link span id", &span.name, &link.span_id, 8, false)?;
        }
    }
    Ok(())
}

/// Lower-case hex, as OTLP/JSON writes ids.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// The body of a 200 answer: an empty `ExportTraceServiceResponse` in the request's encoding.
pub(crate) fn success_body(protocol: Protocol) -> Vec<u8> {
    let response = ExportTraceServiceResponse::default();
    match protocol {
        Protocol::Protobuf => response.encode_to_vec(),
        Protocol::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// `google.rpc.Status`, the body OTLP/HTTP puts in every 4xx and 5xx answer. The OTLP
/// definitions do not include it, so it is declared here with its field numbers.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The body of an error answer: a `google.rpc.Status` in the request's encoding, protobuf when
/// the request's encoding is unknown.
pub(crate) fn error_body(protocol: Option<Protocol>, status: u16, message: &str) -> Vec<u8> {
    // The gRPC code closest to the HTTP status, as the gRPC-HTTP mapping pairs them.
    let code = match status {
        400 | 413 | 415 => 3,   // INVALID_ARGUMENT
        401 => 16,              // UNAUTHENTICATED
        403 => 7,               // PERMISSION_DENIED
        404 => 5,               // NOT_FOUND
        405 | 501 => 12,        // UNIMPLEMENTED
        429 => 8,               // RESOURCE_EXHAUSTED
        502..=504 => 14,        // UNAVAILABLE
        _ if status < 500 => 9, // FAILED_PRECONDITION
        _ => 13,                // INTERNAL
    };
    match protocol {
        Some(Protocol::Json) => serde_json::json!({ "code": code, "message": message }).to_string().into_bytes(),
        Some(Protocol::Protobuf) | None => RpcStatus { code, message: message.to_owned() }.encode_to_vec(),
    }
}

/// The `Content-Type` of answers in `protocol`'s encoding.
pub(crate) fn content_type(protocol: Option<Protocol>) -> &'static str {
    match protocol {
        Some(Protocol::Json) => "application/json",
        Some(Protocol::Protobuf) | None => "application/x-protobuf",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request_with(span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn valid_span() -> Span {
        Span { trace_id: vec![1; 16], span_id: vec![2; 8], name: "s".to_owned(), ..Default::default() }
    }

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        assert_eq!(protocol(Some("application/json; charset=utf-8")), Ok(Protocol::Json));
        assert_eq!(protocol(Some("Application/X-Protobuf")), Ok(Protocol::Protobuf));
        assert_eq!(protocol(Some("application/protobuf")).unwrap_err().status, 415);
        assert_eq!(protocol(None).unwrap_err().status, 415);
    }

    #[test]
    fn only_gzip_and_identity_encodings_are_undone() {
        assert_eq!(encoding(None), Ok(Encoding::Identity));
        assert_eq!(encoding(Some("GZIP")), Ok(Encoding::Gzip));
        assert_eq!(encoding(Some("zstd")).unwrap_err().status, 415);
    }

    #[test]
    fn ids_of_the_wrong_length_or_all_zero_are_rejected() {
        assert!(check_ids(&request_with(valid_span())).is_ok());
        let short_trace = Span { trace_id: vec![1; 8], ..valid_span() };
        let zero_span = Span { span_id: vec![0; 8], ..valid_span() };
        let bad_parent = Span { parent_span_id: vec![3; 4], ..valid_span() };
        for span in [short_trace, zero_span, bad_parent] {
            let rejection = check_ids(&request_with(span)).unwrap_err();
            assert_eq!(rejection.status, 400, "{}", rejection.message);
        }
    }

    #[test]
    fn success_bodies_decode_as_empty_export_responses() {
        let protobuf = success_body(Protocol::Protobuf);
        assert_eq!(ExportTraceServiceResponse::decode(&protobuf[..]).unwrap(), ExportTraceServiceResponse::default());
        let json: ExportTraceServiceResponse = serde_json::from_slice(&success_body(Protocol::Json)).unwrap();
        assert_eq!(json, ExportTraceServiceResponse::default());
    }

    #[test]
    fn error_bodies_are_rpc_status_in_the_request_encoding() {
        let protobuf = RpcStatus::decode(&error_body(Some(Protocol::Protobuf), 503, "busy")[..]).unwrap();
        assert_eq!(protobuf, RpcStatus { code: 14, message: "busy".to_owned() });
        let json: serde_json::Value = serde_json::from_slice(&error_body(Some(Protocol::Json), 400, "bad")).unwrap();
        assert_eq!(json, serde_json::json!({ "code": 3, "message": "bad" }));
    }

    #[test]
    fn a_gzip_bomb_is_refused_once_it_passes_the_limit() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..=MAX_BODY_BYTES / zeros.len() {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert_eq!(body(Protocol::Protobuf, Encoding::Gzip, &bomb).unwrap_err().status, 413);
    }
}
