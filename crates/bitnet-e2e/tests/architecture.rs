//! Architecture invariants over `cargo metadata`: what each crate may depend on.

use std::process::Command;

use serde_json::Value;

/// The workspace's packages (`cargo metadata --no-deps`).
fn packages() -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(bitnet_e2e::workspace_root())
        .output()
        .expect("runs cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    v["packages"].as_array().expect("packages").clone()
}

/// Names of `package`'s normal (non-dev, non-build) dependencies.
fn normal_dependencies(packages: &[Value], package: &str) -> Vec<String> {
    let p = packages
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("package {package} not in the workspace"));
    p["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|d| d["kind"].is_null())
        .filter_map(|d| d["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn front_ends_reach_the_kernels_only_through_the_engine() {
    let packages = packages();
    for front_end in ["bitnet-cli", "bitnet-server"] {
        let deps = normal_dependencies(&packages, front_end);
        assert!(
            deps.iter().any(|d| d == "bitnet-engine"),
            "{front_end}: {deps:?}"
        );
        assert!(
            !deps.iter().any(|d| d == "bitnet-kernels"),
            "{front_end} depends on bitnet-kernels directly; use bitnet_engine::backend"
        );
        assert!(
            deps.iter().any(|d| d == "bitnet-receipt"),
            "{front_end} writes receipts through bitnet-receipt: {deps:?}"
        );
    }
    // The run-record layer sits on the engine, below the front ends.
    let receipt = normal_dependencies(&packages, "bitnet-receipt");
    assert!(receipt.iter().any(|d| d == "bitnet-engine"), "{receipt:?}");
    for forbidden in ["bitnet-cli", "bitnet-server", "bitnet-kernels"] {
        assert!(
            !receipt.iter().any(|d| d == forbidden),
            "bitnet-receipt depends on {forbidden}"
        );
    }
}
