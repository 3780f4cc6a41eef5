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
//! State: one entry per (customer, day), per (customer, week) and per day with prime accepts.
//! Attempts may come in any time order (each counts in its own day and week), so no window
//! can be retired early; state is bounded by the input.

use std::collections::HashMap;

use compact_str::CompactString;
use foldhash::fast::RandomState;
use hopline_model::{Context, Emit, Node, NodeError, NodeKind, NodeReport};

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

#[derive(Default, Clone, Copy)]
struct DayWindow {
    attempts: u32,
    total: u128,
}

pub struct Policies {
    daily_attempts: u32,
    daily_limit: u128,
    weekly_limit: u128,
    prime_gate: bool,
    prime_cap: u128,
    prime_daily_accepts: u32,
    customers: HashMap<CompactString, u32, RandomState>,
    days: HashMap<u64, DayWindow, RandomState>,
    weeks: HashMap<u64, u128, RandomState>,
    prime_days: HashMap<i64, u32, RandomState>,
    outcomes: [u64; Outcome::ALL.len()],
}

/// One map key from a customer index and a day number.
fn window_key(customer: u32, day: i64) -> u64 {
    u64::from(customer) << 32 | u64::from(day as u32)
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
            days: HashMap::default(),
            weeks: HashMap::default(),
            prime_days: HashMap::default(),
            outcomes: [0; Outcome::ALL.len()],
        }
    }

    fn customer_index(&mut self, customer_id: &str) -> u32 {
        if let Some(&index) = self.customers.get(customer_id) {
            return index;
        }
        let index = self.customers.len() as u32;
        self.customers.insert(CompactString::from(customer_id), index);
        index
    }

    /// Decides one canonical attempt and updates the windows.
    pub fn decide(&mut self, attempt: &Attempt) -> Outcome {
        let customer = self.customer_index(&attempt.customer_id);
        let week_total = self.weeks.get(&window_key(customer, attempt.week)).copied().unwrap_or(0);
        let day = self.days.entry(window_key(customer, attempt.day)).or_default();
        let effective = attempt.effective;
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
            if week_total.saturating_add(effective) > self.weekly_limit {
                break 'check Outcome::WeeklyAmount;
            }
            Outcome::Accepted
        };
        day.attempts = day.attempts.saturating_add(1);
        if outcome == Outcome::Accepted {
            day.total += effective;
            *self.weeks.entry(window_key(customer, attempt.week)).or_default() += effective;
            if prime {
                *self.prime_days.entry(attempt.day).or_default() += 1;
            }
        }
        outcome
    }
}

impl Node<LoadMsg> for Policies {
    fn process(&mut self, _: &Context<'_>, message: LoadMsg, out: &mut Emit<'_, LoadMsg>) -> Result<(), NodeError> {
        match message {
            LoadMsg::Attempt(attempt) => {
                let outcome = self.decide(&attempt);
                self.outcomes[outcome as usize] += 1;
                out.emit(LoadMsg::Decision(Decision { id: attempt.id, customer_id: attempt.customer_id, outcome }));
            }
            decision @ LoadMsg::Decision(_) => out.emit(decision),
            other => return Err(super::unexpected(&other)),
        }
        Ok(())
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
