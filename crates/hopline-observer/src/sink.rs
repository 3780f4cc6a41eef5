//! The checkpoint sink (`sink: { kind: checkpoint }`): saves how far the observer has got.
//!
//! A batch reaches it only when every action of every change in it has been delivered or has
//! given up (see `act`). In one transaction it files the batch's dead letters in `hopline.dlq`
//! and moves the consumer's checkpoint to the batch's last change. So after any crash, a start
//! resumes after the last saved batch: no change is lost, and the changes delivered again are at
//! most those of the one batch in flight (`runtime.batch_size`, plus any it carries ahead of
//! their window). A dead letter is filed exactly once with its checkpoint. When the connection breaks, it reconnects with backoff and saves
//! again; nothing goes on until the save has been made.
//!
//! Changes delivered ahead of their window (see [`crate::source`]) are noted in `hopline.ahead`
//! in the same transaction, and forgotten once the checkpoint has passed their window. While
//! nothing changes, it saves the source's idle position (at most once a second), so that the
//! checkpoint keeps up with the database and the change log can be pruned.
//!
//! Each sampled change gets a `checkpoint` span (the transaction that saved it). Every half
//! minute or so it also removes the change-log rows every consumer has passed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hopline_model::trace::Span;
use hopline_model::{Envelope, Sink, SinkError};

use crate::db::{self, Backoff, Database};
use crate::message::{ObserverMsg, Position};
use crate::source::Idle;

/// How often an idle position is saved at most.
const IDLE_SAVE_EVERY: Duration = Duration::from_secs(1);

/// How often change-log rows that every consumer has passed are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

pub struct CheckpointSink {
    database: Database,
    client: Option<postgres::Client>,
    consumer: String,
    idle: Arc<Idle>,
    saved: Position,
    last_idle_save: Instant,
    last_prune: Instant,
}

impl CheckpointSink {
    pub fn new(database: Database, client: postgres::Client, consumer: String, idle: Arc<Idle>) -> CheckpointSink {
        let now = Instant::now();
        CheckpointSink {
            database,
            client: Some(client),
            consumer,
            idle,
            saved: Position::default(),
            last_idle_save: now,
            last_prune: now,
        }
    }

    fn save(&mut self, batch: &[Envelope<ObserverMsg>], position: Position) -> Result<(), postgres::Error> {
        let client = match &mut self.client {
            Some(client) => client,
            None => unreachable!("connected before saving"),
        };
        let mut tx = client.transaction()?;
        for envelope in batch {
            let event = envelope.payload.event();
            for letter in &event.dead {
                tx.execute(
                    "INSERT INTO hopline.dlq (consumer, event_id, change_seq, table_name, key, observer, action, \
                     request, attempts, last_error) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8::text::jsonb, $9, $10) \
                     ON CONFLICT (consumer, event_id) DO NOTHING",
                    &[
                        &self.consumer,
                        &letter.event_id,
                        &event.change.seq,
                        &event.change.table.qualified(),
                        &event.change.key.get(),
                        &letter.observer,
                        &letter.action,
                        &letter.request.to_string(),
                        &(letter.attempts as i32),
                        &letter.last_error,
                    ],
                )?;
            }
        }
        for envelope in batch {
            let change = &envelope.payload.event().change;
            if let Some(xid) = change.ahead {
                tx.execute(
                    "INSERT INTO hopline.ahead (consumer, seq, xid) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&self.consumer, &change.seq, &xid],
                )?;
            }
        }
        Self::move_checkpoint(&mut tx, &self.consumer, position)?;
        tx.commit()
    }

    fn move_checkpoint(
        tx: &mut postgres::Transaction<'_>,
        consumer: &str,
        position: Position,
    ) -> Result<(), postgres::Error> {
        tx.execute(
            "UPDATE hopline.checkpoint SET window_lo = $2, window_hi = $3, last_seq = $4, saved_at = now() \
             WHERE consumer = $1",
            &[&consumer, &position.window_lo, &position.window_hi, &position.seq],
        )?;
        tx.execute("DELETE FROM hopline.ahead WHERE consumer = $1 AND xid < $2", &[&consumer, &position.window_lo])?;
        Ok(())
    }

    /// Saves the source's idle position, if it is further than the last one saved. Best effort:
    /// a failure is tried again at the next idle moment.
    fn save_idle(&mut self) {
        if self.last_idle_save.elapsed() < IDLE_SAVE_EVERY {
            return;
        }
        let Some(position) = self.idle.position.lock().expect("idle lock").take() else { return };
        if position.window_lo <= self.saved.window_lo {
            return;
        }
        self.last_idle_save = Instant::now();
        if self.client.is_none() {
            match self.database.connect() {
                Ok(client) => self.client = Some(client),
                Err(e) => {
                    eprintln!("hopline: observer: the checkpoint cannot be saved yet: {e}; retrying");
                    *self.idle.position.lock().expect("idle lock") = Some(position);
                    return;
                }
            }
        }
        let result = match &mut self.client {
            Some(client) => client.transaction().and_then(|mut tx| {
                Self::move_checkpoint(&mut tx, &self.consumer, position)?;
                tx.commit()
            }),
            None => return,
        };
        match result {
            Ok(()) => self.saved = position,
            Err(e) => {
                eprintln!("hopline: observer: cannot save the checkpoint while idle: {}", db::error_text(&e));
                if db::is_connection_error(&e) {
                    self.client = None;
                }
            }
        }
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.prune();
        }
    }

    /// Removes change-log rows below every consumer's window (best effort: a failure is said
    /// and tried again later).
    fn prune(&mut self) {
        self.last_prune = Instant::now();
        if let Some(client) = &mut self.client {
            let result = client.execute(
                "DELETE FROM hopline.change_log WHERE xid < (SELECT min(window_lo) FROM hopline.checkpoint)",
                &[],
            );
            if let Err(e) = result {
                eprintln!("hopline: observer: cannot prune the change log: {}", db::error_text(&e));
            }
        }
    }
}

impl Sink<ObserverMsg> for CheckpointSink {
    fn write_batch(&mut self, batch: &mut Vec<Envelope<ObserverMsg>>) -> Result<(), SinkError> {
        let Some(last) = batch.last() else {
            self.save_idle();
            return Ok(());
        };
        let position = last.payload.event().change.position;
        let spans: Vec<Span> = batch
            .iter()
            .filter_map(|e| {
                let parent = hopline_model::trace::sampled(&e.header)?;
                let mut span = Span::open(parent, "checkpoint", &e.header)?;
                span.set("hopline.consumer", self.consumer.as_str());
                span.set("hopline.checkpoint.seq", position.seq);
                Some(span)
            })
            .collect();
        let mut backoff = Backoff::new();
        loop {
            if self.client.is_none() {
                match self.database.connect() {
                    Ok(client) => {
                        eprintln!("hopline: observer: the checkpoint reconnected to {}", self.database.shown());
                        self.client = Some(client);
                    }
                    Err(e) => {
                        eprintln!("hopline: observer: the checkpoint cannot be saved yet: {e}; retrying");
                        std::thread::sleep(backoff.next_wait());
                        continue;
                    }
                }
            }
            match self.save(batch, position) {
                Ok(()) => {
                    self.saved = position;
                    break;
                }
                Err(e) if db::is_connection_error(&e) => {
                    eprintln!(
                        "hopline: observer: lost the checkpoint connection to {} ({}); reconnecting",
                        self.database.shown(),
                        db::error_text(&e)
                    );
                    self.client = None;
                    std::thread::sleep(backoff.next_wait());
                }
                Err(e) => {
                    return Err(SinkError::App {
                        kind: "checkpoint".into(),
                        message: format!("cannot save the checkpoint: {}", db::error_text(&e)),
                    });
                }
            }
        }
        drop(spans);
        batch.clear();
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.prune();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn holds_unflushed(&self) -> bool {
        false
    }
}
