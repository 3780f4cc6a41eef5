//! `policies`: the velocity limits, decided against the customer's windows, which this node
//! owns and updates.
//!
//! For each canonical attempt, the first failing check declines it, in this order: daily
//! attempts, prime gate (amount cap, then the day's global prime slots), daily amount, weekly
//! amount. Then the windows are updated: the customer's attempt count for the day always;
//! the day and week totals, and the day's prime slots, only when accepted.
//!
//! Checking and updating are one node on purpose: the windows a check reads are the windows
//! the previous decision wrote, so both must happen atomically per event. Split over two
//! nodes, they would need shared state, and two process groups could not hold it.
//!
//! State: per customer, its day windows and week windows, each kept sorted by day or week;
//! and per day, the prime accepts. Input mostly comes in time order, so the window an attempt
//! needs is almost always its customer's latest one: found without a hash lookup and without
//! touching cold memory. An attempt out of time order finds its window by binary search, and
//! counts in its own day and week. No window is ever retired (a later line may go back to any
//! day), so state is bounded by the input: one small entry per distinct customer day and week.

use std::collections::HashMap;

use compact_str::CompactString;
use foldhash::fast::RandomState;
use hopline_model::{Context, NodeError, NodeKind, NodeReport, Transform};

use crate::message::{ATTEMPT, Attempt, DECISION, Decision, LoadMsg, Outcome};
use crate::money::{Money, SCALE};
use crate::prime::is_prime_digits;

pub const KIND: NodeKind<LoadMsg> = NodeKind {
    name: "policies",
    summary: "decides each attempt against daily attempts, prime gate, daily and weekly amounts; updates the windows",
    consumes: &[ATTEMPT, DECISION],
    emits: &[DECISION],
    requires: &["time_keys", "idempotency", "features"],
    build: |params| Ok(Box::new(Policies::new(params.read()?))),
};

/// The limits. Money values are decimals such as `5000.00`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesParams {
    /// Canonical attempts a customer may make per UTC day (accepted or declined).
    pub daily_attempts: u32,
    /// Most a customer may have accepted per UTC day (exactly this much is allowed).
    pub daily_amount: Money,
    /// Most a customer may have accepted per week (exactly this much is allowed).
    pub weekly_amount: Money,
    /// Rules for attempts whose id, read as an integer, is prime. Off when absent.
    #[serde(default)]
    pub prime_gate: PrimeGate,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimeGate {
    pub enabled: bool,
    /// A prime-id attempt with an effective amount above this is declined.
    pub amount_cap: Money,
    /// Prime-id attempts that may be accepted per UTC day, across all customers.
    pub daily_accepts: u32,
}

impl Default for PrimeGate {
    fn default() -> Self {
        PrimeGate { enabled: false, amount_cap: Money(999_900), daily_accepts: 1 }
    }
}

/// A customer's windows, each list sorted by its key.
#[derive(Default)]
struct CustomerWindows {
    days: Vec<DayWindow>,
    weeks: Vec<WeekWindow>,
}

#[derive(Clone, Copy)]
struct DayWindow {
    day: i64,
    attempts: u32,
    total: u128,
}

#[derive(Clone, Copy)]
struct WeekWindow {
    week: i64,
    total: u128,
}

trait Window: Copy {
    fn key(&self) -> i64;
    fn empty(key: i64) -> Self;
}

impl Window for DayWindow {
    fn key(&self) -> i64 {
        self.day
    }
    fn empty(day: i64) -> Self {
        DayWindow { day, attempts: 0, total: 0 }
    }
}

impl Window for WeekWindow {
    fn key(&self) -> i64 {
        self.week
    }
    fn empty(week: i64) -> Self {
        WeekWindow { week, total: 0 }
    }
}

/// The window for `key` in a sorted list, created empty if absent. The latest window is
/// checked first: with input in time order that is the one.
fn window_of<W: Window>(windows: &mut Vec<W>, key: i64) -> &mut W {
    let index = match windows.last() {
        Some(last) if last.key() == key => windows.len() - 1,
        Some(last) if last.key() > key => match windows.binary_search_by_key(&key, W::key) {
            Ok(found) => found,
            Err(at) => {
                windows.insert(at, W::empty(key));
                at
            }
        },
        _ => {
            windows.push(W::empty(key));
            windows.len() - 1
        }
    };
    &mut windows[index]
}

pub struct Policies {
    daily_attempts: u32,
    daily_limit: u128,
    weekly_limit: u128,
    prime_gate: bool,
    prime_cap: u128,
    prime_daily_accepts: u32,
    customers: HashMap<CompactString, CustomerWindows, RandomState>,
    prime_days: HashMap<i64, u32, RandomState>,
    outcomes: [u64; Outcome::ALL.len()],
}

impl Policies {
    pub fn new(params: PoliciesParams) -> Self {
        let scaled = |m: Money| u128::from(m.cents()) * u128::from(SCALE);
        Policies {
            daily_attempts: params.daily_attempts,
            daily_limit: scaled(params.daily_amount),
            weekly_limit: scaled(params.weekly_amount),
            prime_gate: params.prime_gate.enabled,
            prime_cap: scaled(params.prime_gate.amount_cap),
            prime_daily_accepts: params.prime_gate.daily_accepts,
            customers: HashMap::default(),
            prime_days: HashMap::default(),
            outcomes: [0; Outcome::ALL.len()],
        }
    }

    /// Decides one canonical attempt and updates the windows.
    pub fn decide(&mut self, attempt: &Attempt) -> Outcome {
        if !self.customers.contains_key(attempt.customer_id.as_str()) {
            self.customers.insert(attempt.customer_id.clone(), CustomerWindows::default());
        }
        let customer = self.customers.get_mut(attempt.customer_id.as_str()).expect("inserted above");
        let effective = attempt.effective;
        let day = window_of(&mut customer.days, attempt.day);
        let mut prime = false;
        let outcome = 'check: {
            if day.attempts >= self.daily_attempts {
                break 'check Outcome::DailyAttempts;
            }
            if self.prime_gate && is_prime_digits(attempt.id.as_bytes()) {
                if effective > self.prime_cap {
                    break 'check Outcome::PrimeAmountCap;
                }
                if self.prime_days.get(&attempt.day).copied().unwrap_or(0) >= self.prime_daily_accepts {
                    break 'check Outcome::PrimeDailyAccepts;
                }
                prime = true;
            }
            if day.total.saturating_add(effective) > self.daily_limit {
                break 'check Outcome::DailyAmount;
            }
            let week = window_of(&mut customer.weeks, attempt.week);
            if week.total.saturating_add(effective) > self.weekly_limit {
                break 'check Outcome::WeeklyAmount;
            }
            week.total += effective;
            Outcome::Accepted
        };
        day.attempts = day.attempts.saturating_add(1);
        if outcome == Outcome::Accepted {
            day.total += effective;
            if prime {
                *self.prime_days.entry(attempt.day).or_default() += 1;
            }
        }
        outcome
    }
}

impl Transform<LoadMsg> for Policies {
    fn transform(&mut self, _: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        match message {
            LoadMsg::Attempt(attempt) => {
                let outcome = self.decide(attempt);
                self.outcomes[outcome as usize] += 1;
                *message = LoadMsg::Decision(Decision {
                    id: std::mem::take(&mut attempt.id),
                    customer_id: std::mem::take(&mut attempt.customer_id),
                    outcome,
                });
                Ok(())
            }
            LoadMsg::Decision(_) => Ok(()),
            other => Err(super::unexpected(other)),
        }
    }

    fn report(&self) -> NodeReport {
        let counts = Outcome::ALL
            .iter()
            .filter(|&&o| o == Outcome::Accepted || self.outcomes[o as usize] > 0)
            .map(|&o| (o.label().to_string(), self.outcomes[o as usize]))
            .collect();
        NodeReport { counts, incidents: Vec::new() }
    }
}
