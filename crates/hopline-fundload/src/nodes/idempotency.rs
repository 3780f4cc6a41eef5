//! `idempotency`: the first occurrence of a load id in the stream is canonical; every later
//! line with the same id is declined, whatever its customer, amount or time.
//!
//! Ids are compared as written (`007` and `7` differ). Ids of up to 9 digits are packed into
//! a 32-bit key, up to 17 into a 64-bit key, each kind in an open-addressing table at most
//! half full (8 to 32 bytes a distinct id, no allocation per line) whose slots are prefetched
//! a batch ahead; longer ids are kept as strings. The registry holds every distinct id of the run: that is the rule (idempotency is
//! global over the stream), and its size is bounded by the input.

use std::collections::HashSet;

use compact_str::CompactString;
use foldhash::fast::RandomState;
use hopline_model::{Context, Envelope, Incident, NodeError, NodeKind, NodeReport, Transform};

use crate::message::{ATTEMPT, DECISION, Decision, LoadMsg, Outcome};
use crate::table::{KeyMap, pack_digits, pack_short_digits};

pub const KIND: NodeKind<LoadMsg> = NodeKind {
    name: "idempotency",
    summary: "declines every attempt whose id was already seen in the stream",
    consumes: &[ATTEMPT, DECISION],
    emits: &[ATTEMPT, DECISION],
    requires: &["parse"],
    build: |params| {
        params.read::<NoParams>()?;
        Ok(Box::new(Idempotency::default()))
    },
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Every id seen so far.
#[derive(Default)]
pub struct IdRegistry {
    short: KeyMap<(), u32>,
    packed: KeyMap<(), u64>,
    long: HashSet<CompactString, RandomState>,
}

impl IdRegistry {
    /// Records `id` (ASCII digits); returns false if it was already there.
    pub fn insert(&mut self, id: &str) -> bool {
        if let Some(key) = pack_short_digits(id.as_bytes()) {
            return self.short.get_or_insert(key, ()).1;
        }
        match pack_digits(id.as_bytes()) {
            Some(key) => self.packed.get_or_insert(key, ()).1,
            None => self.long.insert(CompactString::from(id)),
        }
    }

    /// Prefetches where `id` would be recorded.
    pub fn prefetch(&self, id: &str) {
        if let Some(key) = pack_short_digits(id.as_bytes()) {
            self.short.prefetch(key);
        } else if let Some(key) = pack_digits(id.as_bytes()) {
            self.packed.prefetch(key);
        }
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.packed.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Default)]
pub struct Idempotency {
    seen: IdRegistry,
    duplicates: Option<Incident>,
}

impl Transform<LoadMsg> for Idempotency {
    fn prepare(&mut self, batch: &[Envelope<LoadMsg>]) {
        for envelope in batch {
            if let LoadMsg::Attempt(attempt) = &envelope.payload {
                self.seen.prefetch(&attempt.id);
            }
        }
    }

    fn transform(&mut self, ctx: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        match message {
            LoadMsg::Attempt(attempt) => {
                if !self.seen.insert(&attempt.id) {
                    self.duplicates
                        .get_or_insert_with(|| Incident::new("duplicate ids", "id seen earlier"))
                        .record(ctx.seq());
                    *message = LoadMsg::Decision(Decision {
                        id: std::mem::take(&mut attempt.id),
                        customer_id: std::mem::take(&mut attempt.customer_id),
                        outcome: Outcome::Duplicate,
                    });
                }
                Ok(())
            }
            LoadMsg::Decision(_) => Ok(()),
            other => Err(super::unexpected(other)),
        }
    }

    fn report(&self) -> NodeReport {
        NodeReport {
            counts: vec![("distinct ids".into(), self.seen.len() as u64)],
            incidents: self.duplicates.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_compared_as_written() {
        let mut ids = IdRegistry::default();
        assert!(ids.insert("7"));
        assert!(ids.insert("007"));
        assert!(!ids.insert("7"));
        assert!(!ids.insert("007"));
        assert!(ids.insert("9999999999999999999"));
        assert!(ids.insert("99999999999999999999"));
        assert!(!ids.insert("99999999999999999999"));
        assert!(ids.insert("099999999999999999999"));
        assert_eq!(ids.len(), 5);
    }
}
