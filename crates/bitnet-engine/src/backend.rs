//! The kernel back end as the front ends see it: CPU features, kernel ids, explicit selection
//! and start-up tuning, re-exported from `bitnet-kernels`.
//!
//! Architecture invariant: the binaries (`bitnet-cli`, `bitnet-server`) depend on the engine,
//! never on `bitnet-kernels` directly. They still need a few back-end facts (which kernels
//! this CPU runs, to validate `--kernel` and to write receipts; tuning, to pick one at start
//! up); routing them through this module keeps the kernels crate free to change everything
//! else, and keeps one place that says what the front ends may rely on.

pub use bitnet_kernels::{Backend, available, by_id, cpu_features, detect, known_ids, tuning};

/// Ids of every kernel implementation this CPU runs, best first (for messages such as "not a
/// kernel this CPU can run (available: ...)").
pub fn available_ids() -> Vec<&'static str> {
    available().iter().map(|o| o.id()).collect()
}
