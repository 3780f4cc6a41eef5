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
use hopline_model::{Context, Envelope, NodeError, NodeKind, NodeReport, Transform};

use crate::message::{ATTEMPT, Attempt, DECISION, Decision, LoadMsg, Outcome};
use crate::money::{Money, SCALE};
use crate::prime::is_prime_digits;
use crate::table::{KeyMap, pack_digits, prefetch};

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

/// A customer's windows: every day and every week in lists sorted by key, and a copy of the
/// current day and week inline, where time-ordered input finds them.
struct Customer {
    day: DayWindow,
    week: WeekWindow,
    days: Windows<DayWindow>,
    weeks: Windows<WeekWindow>,
}

/// Every window of one kind, sorted by key, and where the current one lives.
struct Windows<W> {
    all: Vec<W>,
    /// Index of the current window in `all`.
    at: usize,
    /// Key of the last window of `all`, kept inline so that moving forward reads no window.
    latest: i64,
}

impl<W: Window> Windows<W> {
    fn new(first: W) -> Self {
        Windows { all: vec![first], at: 0, latest: first.key() }
    }
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

/// Makes the window for `key` the current one: writes the current window back to its place,
/// then finds the window for `key`, adding an empty one if there is none. Moving forward in
/// time, the usual case, writes and pushes without reading any window.
fn switch_window<W: Window>(current: &mut W, windows: &mut Windows<W>, key: i64) {
    let all = &mut windows.all;
    all[windows.at] = *current;
    windows.at = if key > windows.latest {
        windows.latest = key;
        all.push(W::empty(key));
        all.len() - 1
    } else {
        match all.binary_search_by_key(&key, W::key) {
            Ok(found) => found,
            Err(place) => {
                all.insert(place, W::empty(key));
                place
            }
        }
    };
    *current = all[windows.at];
}

pub struct Policies {
    daily_attempts: u32,
    daily_limit: u128,
    weekly_limit: u128,
    prime_gate: bool,
    prime_cap: u128,
    prime_daily_accepts: u32,
    /// Customer ids of up to 17 digits, packed, to their index in `customers`.
    packed_customers: KeyMap<u32>,
    /// Longer customer ids to their index in `customers`.
    long_customers: HashMap<CompactString, u32, RandomState>,
    customers: Vec<Customer>,
    prime_days: HashMap<i64, u32, RandomState>,
    outcomes: [u64; Outcome::ALL.len()],
    /// Customer keys of the last two `prepare` calls, for the later prefetch waves.
    prefetched: [Vec<u64>; 2],
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
            packed_customers: KeyMap::default(),
            long_customers: HashMap::default(),
            customers: Vec::new(),
            prime_days: HashMap::default(),
            outcomes: [0; Outcome::ALL.len()],
            prefetched: [Vec::new(), Vec::new()],
        }
    }

    /// The customer's state, created with empty windows for this attempt on first sight.
    fn customer(&mut self, attempt: &Attempt) -> &mut Customer {
        let next = self.customers.len() as u32;
        let (index, new) = match pack_digits(attempt.customer_id.as_bytes()) {
            Some(key) => self.packed_customers.get_or_insert(key, next),
            None => match self.long_customers.get(attempt.customer_id.as_str()) {
                Some(&index) => (index, false),
                None => {
                    self.long_customers.insert(attempt.customer_id.clone(), next);
                    (next, true)
                }
            },
        };
        if new {
            let (day, week) = (DayWindow::empty(attempt.day), WeekWindow::empty(attempt.week));
            self.customers.push(Customer { day, week, days: Windows::new(day), weeks: Windows::new(week) });
        }
        &mut self.customers[index as usize]
    }

    /// Decides one canonical attempt and updates the windows.
    pub fn decide(&mut self, attempt: &Attempt) -> Outcome {
        let (daily_attempts, daily_limit, weekly_limit) = (self.daily_attempts, self.daily_limit, self.weekly_limit);
        let (prime_gate, prime_cap, prime_daily_accepts) = (self.prime_gate, self.prime_cap, self.prime_daily_accepts);
        let prime_accepted_today = |policies: &Self| policies.prime_days.get(&attempt.day).copied().unwrap_or(0);
        let prime_gate_applies = prime_gate && is_prime_digits(attempt.id.as_bytes());
        let prime_slots_left = !prime_gate_applies || prime_accepted_today(self) < prime_daily_accepts;
        let customer = self.customer(attempt);
        if customer.day.day != attempt.day {
            switch_window(&mut customer.day, &mut customer.days, attempt.day);
        }
        if customer.week.week != attempt.week {
            switch_window(&mut customer.week, &mut customer.weeks, attempt.week);
        }
        let effective = attempt.effective;
        let (day, week) = (&mut customer.day, &mut customer.week);
        let outcome = if day.attempts >= daily_attempts {
            Outcome::DailyAttempts
        } else if prime_gate_applies && effective > prime_cap {
            Outcome::PrimeAmountCap
        } else if !prime_slots_left {
            Outcome::PrimeDailyAccepts
        } else if day.total.saturating_add(effective) > daily_limit {
            Outcome::DailyAmount
        } else if week.total.saturating_add(effective) > weekly_limit {
            Outcome::WeeklyAmount
        } else {
            Outcome::Accepted
        };
        day.attempts = day.attempts.saturating_add(1);
        if outcome == Outcome::Accepted {
            day.total += effective;
            week.total += effective;
            if prime_gate_applies {
                *self.prime_days.entry(attempt.day).or_default() += 1;
            }
        }
        outcome
    }
}

impl Transform<LoadMsg> for Policies {
    /// Prefetches in three waves, one step apart: the index slots of the customers in
    /// `upcoming`; the states of the customers of the previous call (whose slots have arrived
    /// by now); the current windows of the customers of the call before. Each wave reads only
    /// what the wave before brought in, so the memory requests overlap instead of queueing.
    /// (Even a few thousand customers miss the caches: the id registry's random inserts keep
    /// evicting them.)
    fn prepare(&mut self, upcoming: &[Envelope<LoadMsg>]) {
        let [older, previous] = &mut self.prefetched;
        for key in older.drain(..) {
            if let Some(index) = self.packed_customers.get(key) {
                let customer = &self.customers[index as usize];
                prefetch(&customer.days.all[customer.days.at]);
                prefetch(&customer.weeks.all[customer.weeks.at]);
            }
        }
        for &key in previous.iter() {
            if let Some(index) = self.packed_customers.get(key) {
                prefetch(&self.customers[index as usize]);
            }
        }
        std::mem::swap(older, previous);
        previous.extend(upcoming.iter().filter_map(|e| match &e.payload {
            LoadMsg::Attempt(a) => pack_digits(a.customer_id.as_bytes()),
            _ => None,
        }));
        previous.iter().for_each(|&key| self.packed_customers.prefetch(key));
    }

    fn transform(&mut self, ctx: &Context<'_>, message: &mut LoadMsg) -> Result<(), NodeError> {
        match message {
            LoadMsg::Attempt(attempt) => {
                // A span of its own in a debug-level trace: the windows lookup and the checks.
                let span = ctx.detail("check velocity limits");
                let outcome = self.decide(attempt);
                drop(span);
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
