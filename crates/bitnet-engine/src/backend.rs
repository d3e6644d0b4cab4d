//! The kernel back end as the front ends see it: CPU features, kernel ids, explicit selection
//! and start-up tuning, re-exported from `bitnet-kernels`.
//!
//! Architecture invariant: the binaries (`bitnet-cli`, `bitnet-server`) depend on the engine,
//! never on `bitnet-kernels` directly. They still need a few back-end facts (which kernels
//! this CPU runs, to validate `--kernel` and to write receipts; tuning, to pick one at start
//! up); routing them through this module keeps the kernels crate free to change everything
//! else, and keeps one place that says what the front ends may rely on.

pub use bitnet_kernels::membw::ReadProbe;
pub use bitnet_kernels::{Backend, available, by_id, cpu_features, detect, known_ids, tuning};

/// Memory read bandwidth as decode sees it (for `bench`'s roofline): the fastest read
/// kernel ([`bitnet_kernels::membw`]) on a fresh kernel pool of `threads` threads, the same
/// pool type the model runs on, best of `passes` reads of a `bytes` buffer.
///
/// # Panics
/// If `passes == 0`.
pub fn read_bandwidth(threads: usize, bytes: usize, passes: usize) -> ReadProbe {
    let kernels = bitnet_kernels::Kernels::new(threads);
    bitnet_kernels::membw::read_bandwidth(&kernels, bytes, passes)
}

/// The `--kernel list` text both front ends print: every kernel id compiled for this
/// architecture, best first, each marked with whether this CPU runs it and which one is the
/// default.
pub fn list_text() -> String {
    let available = available_ids();
    let default = detect().id();
    let mut out = String::new();
    for id in known_ids() {
        let note = if *id == default {
            "supported (default)"
        } else if available.contains(id) {
            "supported"
        } else {
            "not supported by this CPU"
        };
        out.push_str(&format!("{id:<18} {note}\n"));
    }
    out
}

/// Ids of every kernel implementation this CPU runs, best first (for messages such as "not a
/// kernel this CPU can run (available: ...)").
pub fn available_ids() -> Vec<&'static str> {
    available().iter().map(|o| o.id()).collect()
}
