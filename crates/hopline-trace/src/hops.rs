//! Hop spans, and which consumer span received what which producer span sent.
//!
//! A hop span is a span of kind PRODUCER (the sending group's side) or CONSUMER (the receiving
//! group's side) carrying an integer `hopline.route_hop`. A consumer is paired with the
//! producer that is its parent in the same trace, or, failing that, with a producer its span
//! links point at (the messaging conventions' shape for a batch received at once). A producer
//! no consumer points at (the event was in flight when a worker died) and a consumer whose
//! producer is missing (the sender's spans were lost) stay unpaired, and are counted.

use std::collections::HashMap;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::attributes;
use crate::ids::{SpanId, TraceId};
use crate::span::TracedSpan;

/// What names a hop when neither side says.
pub(crate) const UNKNOWN_GROUP: &str = "(unknown)";

/// One hop of one event: both spans when they pair, else the one there is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    /// Index of the producer span.
    pub producer: Option<usize>,
    /// Index of the consumer span.
    pub consumer: Option<usize>,
    /// `hopline.route_hop` (the producer's when both are there).
    pub route_hop: u64,
    /// The sending process group.
    pub from: String,
    /// The receiving process group.
    pub to: String,
}

/// `hopline.route_hop` when `span` is a hop span of `kind`.
fn route_hop(span: &TracedSpan, kind: SpanKind) -> Option<u64> {
    if span.kind() != kind {
        return None;
    }
    span.attribute(attributes::ROUTE_HOP).and_then(attributes::as_u64)
}

/// Whether `span` is a hop span (either side).
pub(crate) fn is_hop_span(span: &TracedSpan) -> bool {
    route_hop(span, SpanKind::Producer).or_else(|| route_hop(span, SpanKind::Consumer)).is_some()
}

/// Every hop in `spans`, sorted by route hop, sending group, receiving group, trace id and
/// time (so the order does not depend on the input's).
pub(crate) fn hops(spans: &[TracedSpan]) -> Vec<Hop> {
    let producers: HashMap<(TraceId, SpanId), usize> = spans
        .iter()
        .enumerate()
        .filter(|(_, span)| route_hop(span, SpanKind::Producer).is_some())
        .map(|(i, span)| ((span.trace_id(), span.span_id()), i))
        .collect();
    let mut paired = vec![false; spans.len()];
    let mut hops = Vec::new();

    for (c, consumer) in spans.iter().enumerate() {
        let Some(consumer_hop) = route_hop(consumer, SpanKind::Consumer) else { continue };
        let by_parent = consumer.parent_span_id().and_then(|parent| producers.get(&(consumer.trace_id(), parent)));
        let by_link = || {
            consumer.span().links.iter().find_map(|link| {
                let key = (TraceId::from_bytes(&link.trace_id)?, SpanId::from_bytes(&link.span_id)?);
                producers.get(&key)
            })
        };
        let producer = by_parent.or_else(by_link).copied();
        let hop = match producer {
            Some(p) => {
                paired[p] = true;
                let sender = &spans[p];
                Hop {
                    producer: Some(p),
                    consumer: Some(c),
                    route_hop: route_hop(sender, SpanKind::Producer).unwrap_or(consumer_hop),
                    from: sending_group(sender),
                    to: receiving_group(consumer, Some(sender)),
                }
            }
            None => Hop {
                producer: None,
                consumer: Some(c),
                route_hop: consumer_hop,
                from: consumer.attribute_text(attributes::HANDOFF_FROM).unwrap_or_else(|| UNKNOWN_GROUP.to_string()),
                to: receiving_group(consumer, None),
            },
        };
        hops.push(hop);
    }
    for &p in producers.values().filter(|&&p| !paired[p]) {
        let sender = &spans[p];
        hops.push(Hop {
            producer: Some(p),
            consumer: None,
            route_hop: route_hop(sender, SpanKind::Producer).unwrap_or_default(),
            from: sending_group(sender),
            to: destination(sender).unwrap_or_else(|| UNKNOWN_GROUP.to_string()),
        });
    }

    let first = |hop: &Hop| -> (TraceId, u64, SpanId) {
        let span = &spans[hop.producer.or(hop.consumer).unwrap_or_default()];
        (span.trace_id(), span.start_ns(), span.span_id())
    };
    hops.sort_by_cached_key(|hop| {
        (hop.route_hop, hop.from.clone(), hop.to.clone(), first(hop), hop.consumer.map(|c| spans[c].span_id()))
    });
    hops
}

fn destination(span: &TracedSpan) -> Option<String> {
    span.attribute_text(attributes::MESSAGING_DESTINATION_NAME)
}

fn sending_group(producer: &TracedSpan) -> String {
    producer.process_group().unwrap_or_else(|| UNKNOWN_GROUP.to_string())
}

fn receiving_group(consumer: &TracedSpan, producer: Option<&TracedSpan>) -> String {
    consumer.process_group().or_else(|| producer.and_then(destination)).unwrap_or_else(|| UNKNOWN_GROUP.to_string())
}

impl Hop {
    /// Consumer end minus producer start, and whether the consumer ended before the producer
    /// started (clocks out of step); `None` unless paired.
    pub(crate) fn latency(&self, spans: &[TracedSpan]) -> Option<(u64, bool)> {
        let (producer, consumer) = (&spans[self.producer?], &spans[self.consumer?]);
        let skewed = consumer.end_ns() < producer.start_ns();
        Some((consumer.end_ns().saturating_sub(producer.start_ns()), skewed))
    }

    /// How the hop reads in a summary: `hop 1 ingest → policy`.
    pub(crate) fn label(&self) -> String {
        format!("hop {} {} \u{2192} {}", self.route_hop, self.from, self.to)
    }
}
