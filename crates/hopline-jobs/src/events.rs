//! A job's event stream: numbered events in a bounded buffer, and their SSE encoding.

use std::collections::VecDeque;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What an event is; its SSE `event:` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A narration line of one of the job's processes (`hopline run --narrate`).
    Narration,
    /// Anything else a process printed, one line each.
    Log,
    /// The job changed state (not to a terminal one).
    State,
    /// Terminal: the job succeeded.
    Succeeded,
    /// Terminal: the job failed (the data says why).
    Failed,
    /// Terminal: the job was cancelled.
    Cancelled,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Narration => "narration",
            EventKind::Log => "log",
            EventKind::State => "state",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::Cancelled => "cancelled",
        }
    }

    /// Whether the stream ends after this event.
    pub fn is_terminal(self) -> bool {
        matches!(self, EventKind::Succeeded | EventKind::Failed | EventKind::Cancelled)
    }
}

/// One event: its id in the job's stream (1, 2, 3, ...), its kind and its data (one line of
/// JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    pub id: u64,
    pub kind: EventKind,
    pub data: String,
}

impl StreamEvent {
    /// The event as SSE: `id:`, `event:` and `data:` lines and a blank line. Data holding a
    /// line break (it should not: it is one line of JSON) is split over `data:` lines, as SSE
    /// requires, so it reads back whole.
    pub fn to_sse(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + 40);
        let _ = write!(out, "id: {}\nevent: {}\n", self.id, self.kind.name());
        for line in self.data.split(['\n', '\r']) {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        out
    }
}

/// An SSE comment (ignored by clients; keeps a quiet stream's connection alive).
pub fn sse_comment(text: &str) -> String {
    format!(": {}\n\n", text.replace(['\n', '\r'], " "))
}

/// What a client resuming after an id gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The retained events after the id, in order.
    pub events: Vec<StreamEvent>,
    /// Events after the id that were evicted before the client came back.
    pub missed: u64,
    /// Whether the stream has ended (its terminal event is among those held).
    pub ended: bool,
}

/// A job's events: at most `capacity` of them and [`EventBuffer::MAX_BYTES`] of data, the
/// oldest evicted first (the newest is always kept).
#[derive(Debug, Clone)]
pub struct EventBuffer {
    events: VecDeque<StreamEvent>,
    capacity: usize,
    /// Bytes of data held.
    bytes: usize,
    /// The id the next event gets.
    next_id: u64,
    ended: bool,
}

impl EventBuffer {
    /// The most data a job's buffer holds, whatever its event capacity.
    pub const MAX_BYTES: usize = 16 << 20;

    pub fn new(capacity: usize) -> EventBuffer {
        EventBuffer { events: VecDeque::new(), capacity: capacity.max(1), bytes: 0, next_id: 1, ended: false }
    }

    /// Appends an event and returns its id; `None` once the stream has ended (after a
    /// terminal event nothing more is taken).
    pub fn push(&mut self, kind: EventKind, data: String) -> Option<u64> {
        if self.ended {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += data.len();
        self.events.push_back(StreamEvent { id, kind, data });
        while self.events.len() > 1 && (self.events.len() > self.capacity || self.bytes > Self::MAX_BYTES) {
            if let Some(evicted) = self.events.pop_front() {
                self.bytes -= evicted.data.len();
            }
        }
        self.ended = kind.is_terminal();
        Some(id)
    }

    /// The id of the newest event (0 before any).
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The events after `after` (0 for all), and how many of them were evicted.
    pub fn since(&self, after: u64) -> Resume {
        // Ids are consecutive, so the first event after `after` is found by arithmetic.
        let oldest = self.events.front().map_or(self.next_id, |e| e.id);
        let missed = oldest.saturating_sub(after + 1);
        let skip = usize::try_from((after + 1).saturating_sub(oldest)).unwrap_or(usize::MAX);
        let events = self.events.iter().skip(skip).cloned().collect();
        Resume { events, missed, ended: self.ended }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_from_one_and_resume_gives_what_follows_without_repeats() {
        let mut buffer = EventBuffer::new(10);
        for i in 0..5 {
            assert_eq!(buffer.push(EventKind::Log, format!("{{\"n\":{i}}}")), Some(i + 1));
        }
        let resume = buffer.since(3);
        assert_eq!(resume.events.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 5]);
        assert_eq!((resume.missed, resume.ended), (0, false));
        assert!(buffer.since(5).events.is_empty());
        assert_eq!(buffer.since(0).events.len(), 5);
    }

    #[test]
    fn evicted_events_are_counted_as_missed() {
        let mut buffer = EventBuffer::new(3);
        for _ in 0..10 {
            buffer.push(EventKind::Log, "{}".into());
        }
        let resume = buffer.since(2);
        assert_eq!(resume.events.iter().map(|e| e.id).collect::<Vec<_>>(), [8, 9, 10]);
        assert_eq!(resume.missed, 5, "events 3 to 7 are gone");
        assert_eq!(buffer.since(0).missed, 7);
        assert_eq!(buffer.since(8).missed, 0);
    }

    #[test]
    fn the_terminal_event_ends_the_stream_and_is_kept() {
        let mut buffer = EventBuffer::new(2);
        buffer.push(EventKind::State, "{}".into());
        assert_eq!(buffer.push(EventKind::Failed, "{\"reason\":\"x\"}".into()), Some(2));
        assert_eq!(buffer.push(EventKind::Log, "late".into()), None);
        let resume = buffer.since(0);
        assert!(resume.ended);
        assert_eq!(resume.events.last().unwrap().kind, EventKind::Failed);
    }

    #[test]
    fn sse_has_typed_names_ids_and_whole_data() {
        let event = StreamEvent { id: 7, kind: EventKind::Narration, data: "{\"a\":1}".into() };
        assert_eq!(event.to_sse(), "id: 7\nevent: narration\ndata: {\"a\":1}\n\n");
        let split = StreamEvent { id: 8, kind: EventKind::Log, data: "one\ntwo".into() };
        assert_eq!(split.to_sse(), "id: 8\nevent: log\ndata: one\ndata: two\n\n");
        assert_eq!(sse_comment("keep\nalive"), ": keep alive\n\n");
    }

    #[test]
    fn the_bytes_held_are_bounded_too_and_the_newest_event_always_kept() {
        let mut buffer = EventBuffer::new(1000);
        let big = "x".repeat(EventBuffer::MAX_BYTES / 4 + 1);
        for _ in 0..5 {
            buffer.push(EventKind::Log, big.clone());
        }
        let resume = buffer.since(0);
        assert_eq!(resume.events.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(resume.missed, 2);
        let mut huge = EventBuffer::new(10);
        huge.push(EventKind::Log, "y".repeat(EventBuffer::MAX_BYTES + 1));
        assert_eq!(huge.since(0).events.len(), 1);
    }
}
