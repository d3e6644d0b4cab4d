//! The default number of kernel threads, one rule for both front ends (`bitnet-cli` and
//! `bitnet-server` without `-t`):
//!
//! - a small model (under [`SMALL_MODEL_BYTES`] of weights, such as the embedded 5 M-parameter
//!   model) gets **one** thread: a token is well under a millisecond of work, and handing
//!   parts of it to other threads costs more in synchronisation than it saves (measured on a
//!   busy 2-core machine: ~4000 tokens/s on one thread, 60-2000 on two);
//! - a larger model gets one thread per **physical** core: the kernels are bound by memory
//!   bandwidth and SIMD units, which two hyper-threads of one core share, so a second thread
//!   per core adds contention, not speed (llama.cpp's default is the physical core count too).
//!
//! `-t 0` still means every logical core, for whoever wants that explicitly.

use std::path::Path;

use crate::ModelRef;

/// Weight bytes below which a model runs on one thread by default (50 MB: the embedded model
/// is ~5 MB; the smallest real BitNet, 700M, is ~250 MB).
pub const SMALL_MODEL_BYTES: u64 = 50_000_000;

/// The default thread count for a model of `weight_bytes` (see the module doc) on a CPU with
/// `physical_cores` cores. An unknown size counts as large.
pub fn default_threads_for(weight_bytes: Option<u64>, physical_cores: usize) -> usize {
    match weight_bytes {
        Some(b) if b < SMALL_MODEL_BYTES => 1,
        _ => physical_cores.max(1),
    }
}

/// The default thread count for `model` on this machine (see the module doc).
pub fn default_threads(model: &ModelRef) -> usize {
    default_threads_for(weight_bytes(model), physical_cores())
}

/// The size of a model's weights as stored, without loading it: the embedded model's bytes,
/// a GGUF file's size, or the sum of a checkpoint directory's `.safetensors` files. `None`
/// when unknown (a synthetic model, an unreadable path): the caller assumes a large model.
pub fn weight_bytes(model: &ModelRef) -> Option<u64> {
    match model {
        ModelRef::Embedded => Some(bitnet_default_model::gguf_bytes().len() as u64),
        ModelRef::Path(p) => path_bytes(p),
        _ => None,
    }
}

fn path_bytes(path: &Path) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return Some(meta.len());
    }
    let mut total = 0u64;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "safetensors") {
            total += std::fs::metadata(&p).map_or(0, |m| m.len());
        }
    }
    Some(total)
}

/// Physical cores of this machine (hyper-threads of one core counted once), from Linux's
/// CPU topology in sysfs, else `/proc/cpuinfo`'s (physical id, core id) pairs, else the
/// logical count `available_parallelism` gives. Never more than the logical CPUs this
/// process may use (a container's or `taskset`'s limit), never 0.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let physical = sysfs_cores()
        .or_else(|| {
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|t| cpuinfo_cores(&t))
        })
        .unwrap_or(logical);
    physical.clamp(1, logical)
}

/// Distinct (package, core) pairs under /sys/devices/system/cpu/cpu*/topology.
fn sysfs_cores() -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/sys/devices/system/cpu").ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let topo = entry.path().join("topology");
        let read = |f: &str| {
            std::fs::read_to_string(topo.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        if let (Some(pkg), Some(core)) = (read("physical_package_id"), read("core_id")) {
            cores.insert((pkg, core));
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

/// Distinct (physical id, core id) pairs of a `/proc/cpuinfo` text (x86 lists both per
/// logical CPU; other architectures may list neither: `None` then).
fn cpuinfo_cores(text: &str) -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    let mut physical = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "physical id" => physical = Some(value.trim().to_string()),
            "core id" => {
                cores.insert((
                    physical.clone().unwrap_or_default(),
                    value.trim().to_string(),
                ));
            }
            _ => {}
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_models_get_one_thread_large_ones_the_physical_cores() {
        assert_eq!(default_threads_for(Some(5_000_000), 8), 1);
        assert_eq!(default_threads_for(Some(SMALL_MODEL_BYTES - 1), 8), 1);
        assert_eq!(default_threads_for(Some(SMALL_MODEL_BYTES), 8), 8);
        assert_eq!(default_threads_for(Some(1_200_000_000), 4), 4);
        assert_eq!(default_threads_for(None, 6), 6);
        assert_eq!(default_threads_for(None, 0), 1);
    }

    #[test]
    fn the_embedded_model_is_small() {
        assert_eq!(default_threads(&ModelRef::Embedded), 1);
        let bytes = weight_bytes(&ModelRef::Embedded).unwrap();
        assert!(bytes > 1_000_000 && bytes < SMALL_MODEL_BYTES, "{bytes}");
    }

    #[test]
    fn sizes_of_files_and_checkpoint_directories() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-bitnet");
        let gguf = fixtures.join("i2s/model-i2_s.gguf");
        assert_eq!(
            weight_bytes(&ModelRef::Path(gguf.clone())),
            Some(std::fs::metadata(&gguf).unwrap().len())
        );
        let dir = weight_bytes(&ModelRef::Path(fixtures.join("packed"))).unwrap();
        assert!(dir > 0);
        assert_eq!(weight_bytes(&ModelRef::Path("/nonexistent".into())), None);
        assert_eq!(weight_bytes(&ModelRef::synthetic("2b4t", 0).unwrap()), None);
    }

    #[test]
    fn hyper_threads_of_one_core_count_once() {
        let two_cores_four_threads = "processor\t: 0\nphysical id\t: 0\ncore id\t\t: 0\n\n\
            processor\t: 1\nphysical id\t: 0\ncore id\t\t: 1\n\n\
            processor\t: 2\nphysical id\t: 0\ncore id\t\t: 0\n\n\
            processor\t: 3\nphysical id\t: 0\ncore id\t\t: 1\n";
        assert_eq!(cpuinfo_cores(two_cores_four_threads), Some(2));
        let two_sockets = "physical id : 0\ncore id : 0\nphysical id : 1\ncore id : 0\n";
        assert_eq!(cpuinfo_cores(two_sockets), Some(2));
        assert_eq!(cpuinfo_cores("processor : 0\nBogoMIPS : 50\n"), None);
        let n = physical_cores();
        assert!(n >= 1 && n <= std::thread::available_parallelism().unwrap().get());
    }
}
