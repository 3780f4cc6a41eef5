//! The run summary: what came in, what went out, what each node has to say, how fast.

use std::fmt;
use std::time::Duration;

use hopline_model::NodeReport;

use crate::multiprocess::GroupStatus;
use crate::tracing::{DestinationStats, TracingReport};

/// Everything a finished run reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub app: String,
    pub scenario: String,
    pub profile: &'static str,
    pub records_in: u64,
    pub records_out: u64,
    pub elapsed: Duration,
    /// Each node's report, by node name, in pipeline order.
    pub nodes: Vec<(String, NodeReport)>,
    /// Each process group's counters, in pipeline order (multiprocess profile only).
    pub groups: Vec<GroupReport>,
    /// The signal that stopped the run early (it drained: the output holds every record read).
    pub stopped_by: Option<&'static str>,
    /// What tracing did, when the run traced.
    pub tracing: Option<TracingReport>,
}

/// One process group's part of a multiprocess run.
#[derive(Debug, Clone)]
pub struct GroupReport {
    pub name: String,
    pub pid: u32,
    pub status: GroupStatus,
}

impl RunReport {
    pub fn records_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.records_in as f64 / secs } else { 0.0 }
    }

    /// The named count `label` of node `node`, if it reported one.
    pub fn count(&self, node: &str, label: &str) -> Option<u64> {
        let (_, report) = self.nodes.iter().find(|(name, _)| name == node)?;
        report.counts.iter().find(|(l, _)| l == label).map(|(_, n)| *n)
    }
}

/// Formats an integer with thousands separators: `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}/{} ({} profile): {} records in, {} out in {:.3} s ({} records/s)",
            self.app,
            self.scenario,
            self.profile,
            thousands(self.records_in),
            thousands(self.records_out),
            self.elapsed.as_secs_f64(),
            thousands(self.records_per_second().round() as u64),
        )?;
        if let Some(signal) = self.stopped_by {
            writeln!(f, "  stopped early by {signal}: drained; the output holds every record read")?;
        }
        for (node, report) in &self.nodes {
            if !report.counts.is_empty() {
                let counts: Vec<String> =
                    report.counts.iter().map(|(label, n)| format!("{} {label}", thousands(*n))).collect();
                writeln!(f, "  {node}: {}", counts.join(", "))?;
            }
            let mut kinds: Vec<&str> = report.incidents.iter().map(|i| i.kind.as_str()).collect();
            kinds.dedup();
            for kind in kinds {
                let of_kind: Vec<_> = report.incidents.iter().filter(|i| i.kind == kind).collect();
                let total: u64 = of_kind.iter().map(|i| i.count).sum();
                writeln!(f, "  {node}: {} {kind}", thousands(total))?;
                for incident in of_kind {
                    let seqs: Vec<String> = incident.first_seqs.iter().map(u64::to_string).collect();
                    let more = if incident.count > incident.first_seqs.len() as u64 { ", ..." } else { "" };
                    writeln!(
                        f,
                        "    {}: {} (line{} {}{more})",
                        incident.reason,
                        thousands(incident.count),
                        if incident.count == 1 { "" } else { "s" },
                        seqs.join(", ")
                    )?;
                }
            }
        }
        if !self.groups.is_empty() {
            self.fmt_groups(f)?;
        }
        if let Some(tracing) = &self.tracing {
            fmt_tracing(f, tracing)?;
        }
        Ok(())
    }
}

/// `tracing: N spans`, then each destination's counts over every process, then the forensic
/// trace. Dropped and failed spans are always shown, zero included: their absence is news.
fn fmt_tracing(f: &mut fmt::Formatter<'_>, tracing: &TracingReport) -> fmt::Result {
    let spans: u64 = tracing.processes.iter().map(|(_, s)| s.spans).sum();
    write!(f, "  tracing: {} spans", thousands(spans))?;
    if tracing.processes.len() > 1 {
        let each: Vec<String> =
            tracing.processes.iter().map(|(name, s)| format!("{name} {}", thousands(s.spans))).collect();
        write!(f, " ({})", each.join(", "))?;
    }
    writeln!(f)?;
    let mut destinations: Vec<DestinationStats> = Vec::new();
    for (_, stats) in &tracing.processes {
        for d in &stats.destinations {
            match destinations.iter_mut().find(|t| t.name == d.name) {
                Some(total) => {
                    total.exported += d.exported;
                    total.dropped += d.dropped;
                    total.failed += d.failed;
                    if d.last_error.is_some() {
                        total.last_error.clone_from(&d.last_error);
                    }
                }
                None => destinations.push(d.clone()),
            }
        }
    }
    for d in &destinations {
        write!(
            f,
            "    {}: {} exported, {} dropped, {} failed",
            d.name,
            thousands(d.exported),
            thousands(d.dropped),
            thousands(d.failed)
        )?;
        match &d.last_error {
            Some(error) => writeln!(f, " (last error: {error})")?,
            None => writeln!(f)?,
        }
    }
    match &tracing.forensic {
        Some(Ok(forensic)) => {
            write!(f, "    forensic trace {}: {} spans", forensic.path, thousands(forensic.spans as u64))?;
            if forensic.duplicates_dropped > 0 {
                write!(f, ", {} repeats dropped", thousands(forensic.duplicates_dropped as u64))?;
            }
            match forensic.unresolved_parents {
                0 => writeln!(f, ", every parent resolved"),
                n => writeln!(f, ", {} spans whose parent is missing (dropped or lost)", thousands(n as u64)),
            }
        }
        Some(Err(error)) => writeln!(f, "    forensic trace not written: {error}"),
        None => Ok(()),
    }
}

impl RunReport {
    fn fmt_groups(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  process groups:")?;
        let mut rejects: Vec<(String, u64)> = Vec::new();
        for group in &self.groups {
            let s = &group.status;
            write!(
                f,
                "    {} (pid {}): {} in, {} out",
                group.name,
                group.pid,
                thousands(s.records_in),
                thousands(s.records_out)
            )?;
            if s.frames_received > 0 {
                write!(f, "; received {} frames, {} bytes", thousands(s.frames_received), thousands(s.bytes_received))?;
            }
            if s.frames_sent > 0 {
                write!(f, "; sent {} frames, {} bytes", thousands(s.frames_sent), thousands(s.bytes_sent))?;
            }
            writeln!(f)?;
            for (reason, n) in &s.rejects {
                match rejects.iter_mut().find(|(r, _)| r == reason) {
                    Some((_, total)) => *total += n,
                    None => rejects.push((reason.clone(), *n)),
                }
            }
            if s.refused_connections > 0 {
                writeln!(f, "      {} connections refused (too many open)", thousands(s.refused_connections))?;
            }
        }
        if rejects.is_empty() {
            writeln!(f, "  transport rejects: none")
        } else {
            let total: u64 = rejects.iter().map(|(_, n)| n).sum();
            let each: Vec<String> =
                rejects.iter().map(|(r, n)| format!("{} {}", thousands(*n), r.replace('_', " "))).collect();
            writeln!(f, "  transport rejects: {} ({})", thousands(total), each.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopline_model::Incident;

    #[test]
    fn summary_shows_each_group_and_adds_up_rejects_by_reason() {
        let group = |name: &str, pid, rejects: Vec<(&str, u64)>| GroupReport {
            name: name.into(),
            pid,
            status: GroupStatus {
                records_in: 1000,
                records_out: 1000,
                frames_sent: 2,
                bytes_sent: 99_861,
                frames_received: u64::from(pid > 1) * 2,
                bytes_received: u64::from(pid > 1) * 99_861,
                rejects: rejects.into_iter().map(|(r, n)| (r.to_string(), n)).collect(),
                ..GroupStatus::default()
            },
        };
        let report = RunReport {
            app: "fund_load".into(),
            scenario: "baseline".into(),
            profile: "multiprocess",
            records_in: 1000,
            records_out: 1000,
            elapsed: Duration::from_millis(40),
            nodes: vec![],
            groups: vec![
                group("ingest", 1, vec![]),
                group("policy", 2, vec![("bad_signature", 3), ("replayed", 1)]),
                group("egress", 3, vec![("bad_signature", 1)]),
            ],
            stopped_by: Some("SIGTERM"),
            tracing: None,
        };
        let text = report.to_string();
        assert!(text.contains("  stopped early by SIGTERM: drained"), "{text}");
        assert!(text.contains("    ingest (pid 1): 1,000 in, 1,000 out; sent 2 frames, 99,861 bytes\n"), "{text}");
        assert!(
            text.contains("    policy (pid 2): 1,000 in, 1,000 out; received 2 frames, 99,861 bytes; sent 2 frames"),
            "{text}"
        );
        assert!(text.ends_with("  transport rejects: 5 (4 bad signature, 1 replayed)\n"), "{text}");
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn summary_shows_counts_and_incidents_with_line_numbers() {
        let mut bad_amount = Incident::new("malformed lines", "bad load_amount");
        (1..=7).for_each(|seq| bad_amount.record(seq * 10));
        let mut blank = Incident::new("malformed lines", "blank line");
        blank.record(3);
        let report = RunReport {
            app: "fund_load".into(),
            scenario: "baseline".into(),
            profile: "memory",
            records_in: 1000,
            records_out: 1000,
            elapsed: Duration::from_millis(4),
            nodes: vec![
                ("parse".into(), NodeReport { counts: vec![], incidents: vec![bad_amount, blank] }),
                (
                    "format".into(),
                    NodeReport { counts: vec![("accepted".into(), 600), ("declined".into(), 400)], incidents: vec![] },
                ),
            ],
            groups: vec![],
            stopped_by: None,
            tracing: None,
        };
        let text = report.to_string();
        assert!(
            text.starts_with(
                "fund_load/baseline (memory profile): 1,000 records in, 1,000 out in 0.004 s (250,000 records/s)"
            ),
            "{text}"
        );
        assert!(text.contains("  parse: 8 malformed lines\n"), "{text}");
        assert!(text.contains("    bad load_amount: 7 (lines 10, 20, 30, 40, 50, ...)\n"), "{text}");
        assert!(text.contains("    blank line: 1 (line 3)\n"), "{text}");
        assert!(text.contains("  format: 600 accepted, 400 declined\n"), "{text}");
        assert_eq!(report.count("format", "declined"), Some(400));
    }

    #[test]
    fn tracing_adds_up_each_destination_over_the_processes_and_shows_losses() {
        use crate::tracing::{ForensicReport, TraceStats};
        let otlp = |exported, dropped, failed, error: Option<&str>| DestinationStats {
            name: "otlp http://c:4318/v1/traces".into(),
            exported,
            dropped,
            failed,
            last_error: error.map(str::to_string),
        };
        let tracing = TracingReport {
            processes: vec![
                ("supervisor".into(), TraceStats { spans: 1, destinations: vec![otlp(1, 0, 0, None)] }),
                (
                    "ingest".into(),
                    TraceStats { spans: 5000, destinations: vec![otlp(3000, 1500, 500, Some("HTTP 500"))] },
                ),
            ],
            forensic: Some(Ok(ForensicReport {
                path: "run.trace.jsonl".into(),
                spans: 5001,
                duplicates_dropped: 0,
                unresolved_parents: 2,
            })),
        };
        let text = format!("{}", FmtTracing(&tracing));
        assert_eq!(
            text,
            "  tracing: 5,001 spans (supervisor 1, ingest 5,000)\n    otlp http://c:4318/v1/traces: 3,001 exported, 1,500 dropped, 500 \
             failed (last error: HTTP 500)\n    forensic trace run.trace.jsonl: 5,001 spans, 2 spans whose parent is \
             missing (dropped or lost)\n"
        );
    }

    struct FmtTracing<'a>(&'a TracingReport);

    impl fmt::Display for FmtTracing<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt_tracing(f, self.0)
        }
    }
}
