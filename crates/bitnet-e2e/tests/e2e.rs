//! End-to-end tests across the workspace's binaries: one test binary, a module per area.
//!
//! The binaries come from `target/<profile>/` (see `bitnet_e2e::bin_dir`); run these with
//! `cargo test --workspace` or `cargo nextest run --workspace`, which build them.

mod hostile_template;
mod parity;
mod receipts;
