//! Signed, batched frames between process groups (work in progress).
