//! The observer's node kinds: `match` (tables, operations and conditions) and `act` (the
//! actions, with retries, bounded concurrency and a row's changes kept in order).

pub mod act;
pub mod matching;
