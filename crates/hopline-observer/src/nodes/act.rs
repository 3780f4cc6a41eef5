//! `act`: runs the actions of the observers each change matched.
//!
//! A batch's changes are grouped by row: one row's changes run one after another, in the order
//! they were read (commit order, see [`crate::source`]); different rows run at once, with at
//! most `concurrency` webhook requests in flight over the whole batch. A change's actions run
//! in config order (observer by observer, action by action). The batch goes on only when every
//! action of every change has been delivered or has given up, so the checkpoint never passes a
//! change whose actions are still running; the ones that gave up travel on as dead letters,
//! which the checkpoint sink files in the same transaction as the checkpoint.
//!
//! The requests run on a current-thread runtime driven by the pipeline thread, each on a pooled
//! keep-alive connection it owns while it runs ([`crate::http`]), so the spans of
//! a sampled change are noted there: `action <observer>.<action>` under the node's span, and
//! under it one `POST` client span per attempt (`http.response.status_code`,
//! `hopline.attempt`), whose context is the request's `traceparent`.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hopline_model::trace::{self, NodeSpan, Span};
use hopline_model::{
    ConfigError, Context, Emit, Envelope, EnvelopeHeader, Node, NodeError, NodeInfo, NodeKind, NodeReport, Params,
    TraceContext,
};

use crate::action::{self, ActionKind, Attempt, DeadLetter};
use crate::config::{ActParams, Observer};
use crate::message::{ChangeEvent, ObserverMsg};
use crate::template::Scope;

pub const KIND: NodeKind<ObserverMsg> = NodeKind {
    name: "act",
    summary: "runs the matched observers' actions: webhooks (retried, dead-lettered) and log lines",
    consumes: &[ObserverMsg::MATCHED],
    emits: &[ObserverMsg::ACTED],
    requires: &["match"],
    build,
};

fn build(params: &Params) -> Result<Box<dyn Node<ObserverMsg>>, ConfigError> {
    let read: ActParams = params.read()?;
    if !(1..=1024).contains(&read.concurrency) {
        return Err(params
            .error_at(&["concurrency"], format!("expected 1 to 1024 requests in flight; found {}", read.concurrency)));
    }
    Ok(Box::new(Act::new(read.concurrency).map_err(|m| params.error_at(&[], m))?))
}

/// What the node counts, for the summary.
#[derive(Debug, Default)]
struct Counts {
    changes: Cell<u64>,
    delivered: Cell<u64>,
    retried: Cell<u64>,
    dead_lettered: Cell<u64>,
    logged: Cell<u64>,
}

impl Counts {
    fn add(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
}

/// The `act` node.
pub struct Act {
    runtime: tokio::runtime::Runtime,
    client: crate::http::Client,
    permits: tokio::sync::Semaphore,
    counts: Counts,
}

impl Act {
    pub fn new(concurrency: usize) -> Result<Act, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the webhook runtime: {e}"))?;
        let client = crate::http::Client::new(concurrency);
        Ok(Act { runtime, client, permits: tokio::sync::Semaphore::new(concurrency), counts: Counts::default() })
    }

    /// Runs the actions of `events` (row by row in order, rows at once), returning each
    /// event's dead letters by index.
    fn run(
        &self,
        events: &[(EnvelopeHeader, Box<ChangeEvent>)],
        parents: &[Option<TraceContext>],
    ) -> Vec<Vec<DeadLetter>> {
        let mut chains: HashMap<(&crate::config::TableName, &str), Vec<usize>> = HashMap::new();
        for (i, (_, event)) in events.iter().enumerate() {
            if !event.hits.is_empty() {
                chains.entry(event.change.row()).or_default().push(i);
            }
        }
        let mut dead: Vec<Vec<DeadLetter>> = (0..events.len()).map(|_| Vec::new()).collect();
        if chains.is_empty() {
            return dead;
        }
        let chains: Vec<Vec<usize>> = chains.into_values().collect();
        let results = self.runtime.block_on(async {
            let mut running: FuturesUnordered<_> = chains
                .iter()
                .map(|chain| async move {
                    let mut out = Vec::new();
                    for &i in chain {
                        let (header, event) = &events[i];
                        for observer in &event.hits {
                            for index in 0..observer.actions.len() {
                                if let Some(letter) = self.act(header, event, observer, index, parents[i]).await {
                                    out.push((i, letter));
                                }
                            }
                        }
                    }
                    out
                })
                .collect();
            let mut all = Vec::new();
            while let Some(done) = running.next().await {
                all.extend(done);
            }
            all
        });
        for (i, letter) in results {
            dead[i].push(letter);
        }
        dead
    }

    /// Runs one action on one change; a dead letter if it gave up.
    async fn act(
        &self,
        header: &EnvelopeHeader,
        event: &ChangeEvent,
        observer: &Observer,
        index: usize,
        parent: Option<TraceContext>,
    ) -> Option<DeadLetter> {
        let action = &observer.actions[index];
        let change = &event.change;
        let event_id = change.event_id(&observer.name, &action.name);
        let mut span = parent.and_then(|p| Span::open(p, format!("action {}.{}", observer.name, action.name), header));
        if let Some(span) = &mut span {
            span.set("hopline.observer", observer.name.as_str());
            span.set("hopline.action", action.name.as_str());
            span.set("hopline.event_id", event_id.as_str());
            span.set("db.collection.name", change.table.qualified());
            span.set("db.operation.name", change.op.name());
        }
        let scope = Scope { change, observer: &observer.name, event_id: &event_id };
        let webhook = match &action.kind {
            ActionKind::Log(template) => {
                eprintln!("{}", template.render(&scope));
                Counts::add(&self.counts.logged);
                return None;
            }
            ActionKind::Webhook(webhook) => webhook,
        };
        let body = webhook.body(&scope);
        let first = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = self.permits.acquire().await.expect("the semaphore is never closed");
            let mut http = span.as_ref().and_then(|s| Span::open(s.context(), "POST", header)).map(Span::client);
            let traceparent = match (&http, &span) {
                (Some(http), _) => http.context().to_string(),
                (None, _) => fallback_traceparent(header),
            };
            if let Some(http) = &mut http {
                http.set("http.request.method", "POST");
                // Not `url.full`: a webhook's path often holds its token.
                http.set("server.address", webhook.url.host());
                http.set("server.port", i64::from(webhook.url.port()));
                http.set("hopline.attempt", i64::from(attempt));
                if attempt > 1 {
                    http.set("http.request.resend_count", i64::from(attempt - 1));
                }
            }
            let result = action::send(&self.client, webhook, &body, &event_id, &traceparent).await;
            drop(permit);
            if let Some(http) = &mut http {
                if let Some(status) = result.status() {
                    http.set("http.response.status_code", i64::from(status));
                }
                match &result {
                    Attempt::Delivered { .. } => {}
                    Attempt::Retry { error, .. } | Attempt::GiveUp { error, .. } => http.fail(error.clone()),
                }
            }
            drop(http);
            let error = match result {
                Attempt::Delivered { .. } => {
                    Counts::add(&self.counts.delivered);
                    if let Some(span) = &mut span {
                        span.set("hopline.attempts", i64::from(attempt));
                    }
                    return None;
                }
                Attempt::GiveUp { error, .. } => error,
                Attempt::Retry { error, retry_after, .. } => {
                    match action::next_wait(&webhook.retry, attempt, first, retry_after) {
                        Some(wait) => {
                            Counts::add(&self.counts.retried);
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        None => error,
                    }
                }
            };
            Counts::add(&self.counts.dead_lettered);
            eprintln!(
                "hopline: observer: {}.{} gave up on change {} of {} after {attempt} attempts ({error}); it goes to the \
                 dead-letter queue as {event_id}",
                observer.name, action.name, change.seq, change.table
            );
            if let Some(span) = &mut span {
                span.set("hopline.attempts", i64::from(attempt));
                span.set("hopline.dead_lettered", "true");
                span.fail(error.clone());
            }
            return Some(DeadLetter {
                event_id,
                observer: observer.name.clone(),
                action: action.name.clone(),
                attempts: attempt,
                last_error: error,
                request: webhook.stored_request(&body, &traceparent),
            });
        }
    }
}

/// A `traceparent` for a request of an event that is not traced: the event's own context (a
/// writer's unsampled one) if it has one, else a fresh unsampled one, so a receiver always gets
/// a valid header to log or continue.
fn fallback_traceparent(header: &EnvelopeHeader) -> String {
    let context = header.trace.unwrap_or_else(|| TraceContext {
        trace_id: trace::new_trace_id(),
        span_id: trace::new_span_id(),
        flags: 0,
    });
    TraceContext { span_id: trace::new_span_id(), ..context }.to_string()
}

impl Node<ObserverMsg> for Act {
    fn process(
        &mut self,
        ctx: &Context<'_>,
        message: ObserverMsg,
        out: &mut Emit<'_, ObserverMsg>,
    ) -> Result<(), NodeError> {
        let mut input = vec![Envelope::new(*ctx.header(), message)];
        let mut output = Vec::new();
        self.process_batch(ctx.node(), &mut input, &mut output, &mut |_| {}).map_err(|(_, e)| e)?;
        for envelope in output {
            out.emit(envelope.payload);
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        info: &NodeInfo,
        input: &mut Vec<Envelope<ObserverMsg>>,
        output: &mut Vec<Envelope<ObserverMsg>>,
        lookahead: &mut dyn FnMut(&[Envelope<ObserverMsg>]),
    ) -> Result<(), (u64, NodeError)> {
        let mut events = Vec::with_capacity(input.len());
        for Envelope { header, payload } in input.drain(..) {
            match payload {
                ObserverMsg::Matched(event) => events.push((header, event)),
                other => {
                    let got = hopline_model::Message::kind(&other);
                    return Err((header.seq, NodeError::UnexpectedMessage { got }));
                }
            }
        }
        let spans: Vec<Option<NodeSpan>> = events
            .iter()
            .map(|(header, _)| {
                trace::sampled(header).and_then(|parent| trace::node_started(parent, info.index, header))
            })
            .collect();
        let parents: Vec<Option<TraceContext>> = spans.iter().map(|s| s.as_ref().map(NodeSpan::context)).collect();
        let dead = self.run(&events, &parents);
        let first = output.len();
        for (((header, mut event), letters), span) in events.into_iter().zip(dead).zip(spans) {
            self.counts.changes.set(self.counts.changes.get() + 1);
            event.dead = letters;
            output.push(Envelope::new(header, ObserverMsg::Acted(event)));
            if let Some(span) = span {
                trace::node_finished(span, trace::Outcome::Emitted(1));
            }
        }
        lookahead(&output[first..]);
        Ok(())
    }

    fn report(&self) -> NodeReport {
        let c = &self.counts;
        NodeReport {
            counts: vec![
                ("changes".into(), c.changes.get()),
                ("delivered".into(), c.delivered.get()),
                ("retried".into(), c.retried.get()),
                ("dead-lettered".into(), c.dead_lettered.get()),
                ("logged".into(), c.logged.get()),
            ],
            incidents: Vec::new(),
        }
    }
}
