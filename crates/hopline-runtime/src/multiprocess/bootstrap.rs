//! What a worker is told when it starts, over its stdin pipe, never argv or the environment.
//!
//! The supervisor writes one length-prefixed JSON document to the worker's stdin and then
//! either closes the pipe or, when the run reads stdin, forwards its own stdin after it. The
//! document carries the config text the supervisor validated (so a file edited meanwhile
//! cannot make workers disagree), the worker's group, the run's transport key (hex), the
//! control address and the resolved adapter paths.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use std::time::Duration;

use hopline_model::config::{
    BatchConfig, EffectiveTracing, OtlpExport, OtlpProtocol, Ratio, RelativeTo, Sampler, SpanLevel, TraceFile,
};
use hopline_model::{CorrelationId, TraceContext};
use hopline_transport::TransportKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The largest bootstrap accepted: a config of a few MiB is already absurd.
const MAX_BOOTSTRAP_BYTES: u32 = 16 << 20;

/// A worker's bootstrap. `Debug` shows no key (the key's own `Debug` is redacted).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// Where the config came from, for error messages.
    pub config_origin: String,
    /// The config file's text, as the supervisor validated it.
    pub config_text: String,
    /// This worker's process group (its index in `runtime.process_groups`).
    pub group: u16,
    pub key: TransportKey,
    /// Where the supervisor takes control connections.
    pub control_addr: SocketAddr,
    /// The supervisor's pid: a worker whose parent is not this pid exits at once.
    pub supervisor_pid: u32,
    /// The source path, resolved (only the first group reads it).
    pub input: String,
    /// The sink path, resolved (only the last group writes it).
    pub output: String,
    pub correlation_id: CorrelationId,
    /// The run's tracing, as the supervisor resolved it (config, environment and flags), with
    /// the run span events link to. `None` when the run does not trace.
    pub tracing: Option<WorkerTracing>,
    /// Whether the run narrates (`--narrate`): the worker then writes its own narration lines
    /// to the standard output it shares with the supervisor.
    pub narrate: bool,
}

/// What a worker traces, exactly as the supervisor resolved it: workers never read the
/// `OTEL_*` variables or the flags themselves. File paths are absolute.
#[derive(Debug, Clone)]
pub struct WorkerTracing {
    pub settings: EffectiveTracing,
    pub run_span: Option<TraceContext>,
}

/// [`WorkerTracing`] on the wire (header values included: the bootstrap pipe is private).
#[derive(Serialize, Deserialize)]
struct TracingWire {
    service_name: String,
    sampler: String,
    ratio: Option<f64>,
    debug: bool,
    otlp: Option<OtlpWire>,
    stdout: bool,
    files: Vec<String>,
    forensic: bool,
    max_queue_size: usize,
    max_export_batch_size: usize,
    scheduled_delay_ms: u64,
    run_span: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct OtlpWire {
    endpoint: String,
    json: bool,
    headers: Vec<(String, String)>,
    timeout_ms: u64,
}

impl TracingWire {
    fn from(tracing: &WorkerTracing) -> TracingWire {
        let t = &tracing.settings;
        TracingWire {
            service_name: t.service_name.clone(),
            sampler: t.sampler.name().into(),
            ratio: t.sampler.ratio().map(Ratio::get),
            debug: t.level == SpanLevel::Debug,
            otlp: t.otlp.as_ref().map(|o| OtlpWire {
                endpoint: o.endpoint.clone(),
                json: o.protocol == OtlpProtocol::HttpJson,
                headers: o.headers.clone(),
                timeout_ms: o.timeout.as_millis() as u64,
            }),
            stdout: t.stdout,
            files: t.files.iter().map(|f| f.path.clone()).collect(),
            forensic: t.forensic.is_some(),
            max_queue_size: t.batch.max_queue_size,
            max_export_batch_size: t.batch.max_export_batch_size,
            scheduled_delay_ms: t.batch.scheduled_delay.as_millis() as u64,
            run_span: tracing.run_span.map(|c| c.to_string()),
        }
    }

    fn into_tracing(self) -> Result<WorkerTracing, String> {
        let ratio = || self.ratio.and_then(Ratio::new).ok_or("the sampler's ratio is missing or out of range");
        let sampler = match self.sampler.as_str() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "parentbased_always_on" => Sampler::ParentBasedAlwaysOn,
            "traceidratio" => Sampler::TraceIdRatio(ratio()?),
            "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(ratio()?),
            other => return Err(format!("unknown sampler {other:?}")),
        };
        let run_span = match &self.run_span {
            Some(text) => Some(TraceContext::parse_traceparent(text).ok_or("the run span is not a traceparent")?),
            None => None,
        };
        let file = |path: String| TraceFile { path, relative_to: RelativeTo::WorkingDirectory };
        Ok(WorkerTracing {
            settings: EffectiveTracing {
                enabled: true,
                service_name: self.service_name,
                sampler,
                level: if self.debug { SpanLevel::Debug } else { SpanLevel::Info },
                otlp: self.otlp.map(|o| OtlpExport {
                    endpoint: o.endpoint,
                    protocol: if o.json { OtlpProtocol::HttpJson } else { OtlpProtocol::HttpProtobuf },
                    headers: o.headers,
                    timeout: Duration::from_millis(o.timeout_ms),
                }),
                stdout: self.stdout,
                files: self.files.into_iter().map(file).collect(),
                // The supervisor writes the forensic file; a worker only sends it spans.
                forensic: self.forensic.then(|| file(String::new())),
                batch: BatchConfig {
                    max_queue_size: self.max_queue_size,
                    max_export_batch_size: self.max_export_batch_size,
                    scheduled_delay: Duration::from_millis(self.scheduled_delay_ms),
                },
            },
            run_span,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    config_origin: String,
    config_text: String,
    group: u16,
    key_hex: String,
    control_addr: SocketAddr,
    supervisor_pid: u32,
    input: String,
    output: String,
    correlation_id: String,
    tracing: Option<TracingWire>,
    #[serde(default)]
    narrate: bool,
}

impl Bootstrap {
    /// Writes the bootstrap to `out` (the worker's stdin).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let key_hex = self.key.to_hex();
        let wire = Wire {
            config_origin: self.config_origin.clone(),
            config_text: self.config_text.clone(),
            group: self.group,
            key_hex: key_hex.to_string(),
            control_addr: self.control_addr,
            supervisor_pid: self.supervisor_pid,
            input: self.input.clone(),
            output: self.output.clone(),
            correlation_id: format!("{:032x}", self.correlation_id.0),
            tracing: self.tracing.as_ref().map(TracingWire::from),
            narrate: self.narrate,
        };
        let body = Zeroizing::new(serde_json::to_vec(&wire).map_err(io::Error::other)?);
        let Wire { key_hex: mut copied, .. } = wire;
        zeroize::Zeroize::zeroize(&mut copied);
        let len = u32::try_from(body.len()).ok().filter(|&n| n <= MAX_BOOTSTRAP_BYTES).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the bootstrap is larger than 16 MiB (is the config that big?)")
        })?;
        out.write_all(&len.to_be_bytes())?;
        out.write_all(&body)?;
        out.flush()
    }

    /// Reads the bootstrap from this process's stdin without buffering: the key passes through
    /// no buffer but the zeroized one, and a source reading stdin afterwards gets every byte
    /// that follows the bootstrap.
    pub fn read_from_stdin() -> io::Result<Bootstrap> {
        use std::os::fd::AsFd;
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Bootstrap::read_from(&mut std::fs::File::from(fd))
    }

    /// Reads a bootstrap from `input`, reading exactly its bytes and nothing after them.
    pub fn read_from(input: &mut impl Read) -> io::Result<Bootstrap> {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len);
        if len > MAX_BOOTSTRAP_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "bootstrap declares {len} bytes, more than {MAX_BOOTSTRAP_BYTES}; is stdin a hopline supervisor?"
                ),
            ));
        }
        let mut body = Zeroizing::new(vec![0u8; len as usize]);
        input.read_exact(&mut body)?;
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bootstrap: {what}"));
        let mut wire: Wire = serde_json::from_slice(&body).map_err(|e| invalid(&e.to_string()))?;
        let key =
            TransportKey::from_hex(&wire.key_hex).ok_or_else(|| invalid("the transport key is not 64 hex digits"))?;
        zeroize::Zeroize::zeroize(&mut wire.key_hex);
        let correlation_id = CorrelationId::parse(&wire.correlation_id)
            .ok_or_else(|| invalid("the correlation id is not 32 hex digits"))?;
        let tracing = match wire.tracing {
            Some(tracing) => Some(tracing.into_tracing().map_err(|e| invalid(&format!("tracing: {e}")))?),
            None => None,
        };
        Ok(Bootstrap {
            config_origin: wire.config_origin,
            config_text: wire.config_text,
            group: wire.group,
            key,
            control_addr: wire.control_addr,
            supervisor_pid: wire.supervisor_pid,
            input: wire.input,
            output: wire.output,
            correlation_id,
            tracing,
            narrate: wire.narrate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bootstrap {
        Bootstrap {
            config_origin: "p.yml".into(),
            config_text: "app: x\n".into(),
            group: 2,
            key: TransportKey::from_bytes([7; 32]),
            control_addr: "127.0.0.1:4000".parse().unwrap(),
            supervisor_pid: 99,
            input: "in.txt".into(),
            output: "-".into(),
            correlation_id: CorrelationId(0xabc),
            tracing: None,
            narrate: true,
        }
    }

    #[test]
    fn tracing_settings_cross_whole_and_their_header_values_stay_out_of_debug() {
        let settings = EffectiveTracing {
            enabled: true,
            service_name: "fund-load".into(),
            sampler: Sampler::ParentBasedTraceIdRatio(Ratio::new(0.25).unwrap()),
            level: SpanLevel::Debug,
            otlp: Some(OtlpExport {
                endpoint: "http://127.0.0.1:4318/v1/traces".into(),
                protocol: OtlpProtocol::HttpJson,
                headers: vec![("authorization".into(), "Bearer s3cret-token".into())],
                timeout: Duration::from_millis(1500),
            }),
            stdout: false,
            files: vec![TraceFile { path: "/tmp/spans.jsonl".into(), relative_to: RelativeTo::WorkingDirectory }],
            forensic: Some(TraceFile { path: String::new(), relative_to: RelativeTo::WorkingDirectory }),
            batch: BatchConfig {
                max_queue_size: 100,
                max_export_batch_size: 10,
                scheduled_delay: Duration::from_millis(250),
            },
        };
        let run_span = TraceContext::parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let boot = Bootstrap { tracing: Some(WorkerTracing { settings: settings.clone(), run_span }), ..sample() };
        assert!(!format!("{boot:?}").contains("s3cret"), "{boot:?}");
        let mut bytes = Vec::new();
        boot.write_to(&mut bytes).unwrap();
        let read = Bootstrap::read_from(&mut bytes.as_slice()).unwrap().tracing.unwrap();
        assert_eq!(read.settings, settings);
        assert_eq!(read.run_span, run_span);
    }

    #[test]
    fn round_trips_and_reads_no_byte_past_its_end() {
        let mut bytes = Vec::new();
        sample().write_to(&mut bytes).unwrap();
        bytes.extend_from_slice(b"first input line\n");
        let mut reader = &bytes[..];
        let back = Bootstrap::read_from(&mut reader).unwrap();
        assert_eq!(back.group, 2);
        assert_eq!(back.key.expose_bytes(), &[7; 32]);
        assert_eq!(back.correlation_id, CorrelationId(0xabc));
        assert_eq!(reader, b"first input line\n");
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("0707"), "{shown}");
        assert!(!shown.contains("[7, 7"), "{shown}");
    }

    #[test]
    fn a_huge_declared_length_is_refused_before_reading() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, b'{'];
        let err = Bootstrap::read_from(&mut input).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
