//! Narration: what a run tells a person watching it, as versioned JSON lines on stdout.
//!
//! `hopline run --narrate` makes the run (the memory profile's process, or the supervisor and
//! every worker of a multiprocess run) write one JSON object per line to standard output:
//! startup, each group ready, progress every second or so, warnings, failures with their
//! root cause, the summary. An agent that runs `hopline run` reads them from the one pipe
//! every process of the run shares, and streams them on; a person reads the same lines with
//! `jq`. Records then go to the sink's file (a sink on stdout is refused).
//!
//! ```json
//! {"narration":1,"seq":3,"time":"2026-11-27T06:40:01.123Z","job":"j-7f3a","correlation_id":"0af7…",
//!  "level":"info","actor":{"process":"worker","group":"policy","pid":4242},
//!  "action":"group.ready","target":"policy","message":"policy is ready","fields":{}}
//! ```
//!
//! - `narration` is the format's version: a reader takes a line as narration when it is a
//!   JSON object whose `narration` is a version it knows (1); anything else is a log line.
//! - `seq` counts the lines of one process from 1 (with `actor.pid`, it orders them).
//! - `job` is `HOPLINE_JOB_ID` when set (the agent sets it), else null.
//! - A line is at most [`MAX_LINE_BYTES`] (the message and fields are cut to fit), so that the
//!   lines of several processes writing the same pipe never interleave (POSIX keeps writes of
//!   up to 4096 bytes to a pipe whole).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hopline_model::CorrelationId;
use serde::{Deserialize, Serialize};

/// The narration format's version.
pub const VERSION: u32 = 1;

/// The longest narration line, newline included: a pipe keeps writes this small whole.
pub const MAX_LINE_BYTES: usize = 4096;

/// The variable the job id is read from.
pub const JOB_ID_VAR: &str = "HOPLINE_JOB_ID";

/// How serious a narration event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Who says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `run` (the memory profile's process), `supervisor` or `worker`.
    pub process: String,
    /// The worker's process group.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub group: Option<String>,
    pub pid: u32,
}

/// One narration event, as a line carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Narration {
    /// The format version ([`VERSION`]).
    pub narration: u32,
    pub seq: u64,
    /// UTC, RFC 3339 with milliseconds.
    pub time: String,
    pub job: Option<String>,
    pub correlation_id: String,
    pub level: Level,
    pub actor: Actor,
    /// What happened, dotted: `run.start`, `group.ready`, `progress`, `frames.rejected`,
    /// `run.failed`, `run.succeeded`, ...
    pub action: String,
    /// What it happened to: a group, a node, a file.
    pub target: Option<String>,
    /// For a person.
    pub message: String,
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl Narration {
    /// Reads a line as narration, if it is one (a JSON object with a known `narration`).
    pub fn parse(line: &str) -> Option<Narration> {
        let narration: Narration = serde_json::from_str(line.trim_end()).ok()?;
        (narration.narration == VERSION).then_some(narration)
    }
}

/// Writes one process's narration to stdout. Cheap to call from several threads.
pub struct Narrator {
    actor: Actor,
    job: Option<String>,
    correlation_id: CorrelationId,
    seq: AtomicU64,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Narrator {
    /// A narrator writing to this process's standard output, the job id taken from
    /// `HOPLINE_JOB_ID`.
    pub fn stdout(actor: Actor, correlation_id: CorrelationId) -> Narrator {
        let job = std::env::var(JOB_ID_VAR).ok().filter(|j| !j.is_empty());
        Narrator::new(actor, job, correlation_id, Box::new(std::io::stdout()))
    }

    pub fn new(
        actor: Actor,
        job: Option<String>,
        correlation_id: CorrelationId,
        out: Box<dyn Write + Send>,
    ) -> Narrator {
        Narrator { actor, job, correlation_id, seq: AtomicU64::new(0), out: Mutex::new(out) }
    }

    /// Says one thing. A line that cannot be written is dropped: narration never stops a run.
    pub fn say(&self, level: Level, action: &str, target: Option<&str>, message: &str, fields: Fields) {
        let mut narration = Narration {
            narration: VERSION,
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            time: utc_now(),
            job: self.job.clone(),
            correlation_id: self.correlation_id.to_string(),
            level,
            actor: self.actor.clone(),
            action: action.into(),
            target: target.map(str::to_string),
            message: message.into(),
            fields: fields.0,
        };
        let mut line = serde_json::to_string(&narration).unwrap_or_default();
        if line.len() >= MAX_LINE_BYTES {
            // Too long for one whole pipe write: drop the fields, then cut the message and the
            // target (a path can be long) to what fits.
            narration.fields.clear();
            narration.fields.insert("cut".into(), true.into());
            let bare = {
                let mut bare = narration.clone();
                bare.message.clear();
                bare.target = bare.target.as_ref().map(|_| String::new());
                serde_json::to_string(&bare).unwrap_or_default().len()
            };
            // Room left for the message and target, shared; JSON escaping can grow text up to
            // six times (`\u00xx`), so cut by that much to be sure.
            let room = MAX_LINE_BYTES.saturating_sub(bare + 16) / 6;
            narration.message = cut(&narration.message, room * 3 / 4);
            narration.target = narration.target.as_deref().map(|t| cut(t, room / 4));
            line = serde_json::to_string(&narration).unwrap_or_default();
        }
        line.push('\n');
        let mut out = self.out.lock().expect("narration lock");
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }

    pub fn info(&self, action: &str, target: Option<&str>, message: &str, fields: Fields) {
        self.say(Level::Info, action, target, message, fields);
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut keep = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}…", &text[..keep])
}

/// A narration event's fields, built in order: `Fields::new().with("records", 12)`.
#[derive(Debug, Default)]
pub struct Fields(BTreeMap<String, serde_json::Value>);

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Fields {
        self.0.insert(key.into(), value.into());
        self
    }
}

/// Now, as RFC 3339 UTC with milliseconds (`2026-11-27T06:40:01.123Z`).
pub fn utc_now() -> String {
    hopline_model::clock::now_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn narrator() -> (Narrator, Shared) {
        let out = Shared::default();
        let actor = Actor { process: "worker".into(), group: Some("policy".into()), pid: 7 };
        (Narrator::new(actor, Some("j1".into()), CorrelationId(0xab), Box::new(out.clone())), out)
    }

    #[test]
    fn lines_read_back_as_narration_numbered_from_one() {
        let (narrator, out) = narrator();
        narrator.info("group.ready", Some("policy"), "policy is ready", Fields::new().with("nodes", 2));
        narrator.say(Level::Warn, "frames.rejected", None, "3 frames rejected", Fields::new());
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Narration> = text.lines().map(|l| Narration::parse(l).expect("narration")).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].seq, lines[1].seq), (1, 2));
        assert_eq!(lines[0].job.as_deref(), Some("j1"));
        assert_eq!(lines[0].correlation_id, "000000000000000000000000000000ab");
        assert_eq!(lines[0].actor.group.as_deref(), Some("policy"));
        assert_eq!(lines[0].fields["nodes"], 2);
        assert_eq!(lines[1].level, Level::Warn);
        assert!(text.starts_with("{\"narration\":1,"), "{text}");
    }

    #[test]
    fn other_lines_are_not_narration() {
        assert!(Narration::parse("hopline: something went wrong").is_none());
        assert!(Narration::parse("{\"narration\":2,\"seq\":1}").is_none());
        assert!(Narration::parse("{\"resourceSpans\":[]}").is_none());
    }

    #[test]
    fn a_long_message_is_cut_to_keep_the_line_whole_on_a_pipe() {
        let (narrator, out) = narrator();
        let long = "é".repeat(5000);
        narrator.say(Level::Error, "run.failed", None, &long, Fields::new().with("cause", long.clone()));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.len() <= MAX_LINE_BYTES, "{} bytes", text.len());
        let line = Narration::parse(text.lines().next().unwrap()).unwrap();
        assert!(line.message.ends_with('…'));
        assert_eq!(line.fields["cut"], true);
    }

    #[test]
    fn a_huge_target_or_escaped_message_still_makes_one_bounded_line() {
        let (narrator, out) = narrator();
        let target = "/".repeat(5000) + "tmp/in.txt";
        narrator.info("source.open", Some(&target), &"\u{1}".repeat(3000), Fields::new());
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.len() <= MAX_LINE_BYTES, "{} bytes", text.len());
        let line = Narration::parse(text.lines().next().unwrap()).unwrap();
        assert!(line.target.unwrap().ends_with('…'));
    }
}
