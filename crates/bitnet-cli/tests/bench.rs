//! `bench`: structure of the table and the JSON (not timings).

use crate::util::{cli, stdout_of};

#[test]
fn synthetic_tiny_prints_a_llama_bench_table() {
    let out = stdout_of(&mut cli([
        "bench",
        "--synthetic",
        "tiny",
        "-p",
        "8",
        "-n",
        "4",
        "-r",
        "1",
        "-t",
        "1",
        "--probe-mib",
        "16",
        "--probe-passes",
        "2",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "| model | size | params | backend | threads | test | t/s |"
    );
    assert!(lines[1].starts_with("| --- |"));
    for (line, test) in lines[2..4].iter().zip(["pp8", "tg4"]) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", model, size, params, backend, threads, test, t/s, ""
        assert_eq!(cells.len(), 9, "{line}");
        assert_eq!(cells[1], "tiny synthetic");
        assert_eq!(cells[5], "1");
        assert_eq!(cells[6], test);
        let (mean, sd) = cells[7].split_once(" ± ").expect("mean ± stddev");
        assert!(mean.parse::<f64>().unwrap() > 0.0);
        assert_eq!(sd, "0.00");
    }
    assert!(out.contains("memory read bandwidth"), "{out}");
    assert!(out.contains("roofline"), "{out}");
}

#[test]
fn bench_json_is_an_array_of_results() {
    let rows = bench_rows(&["-p", "4,8", "-n", "2", "-r", "2", "-t", "1,2"]);
    assert_eq!(rows.len(), 6);
    assert_eq!(tests(&rows), ["pp4", "pp8", "tg2", "pp4", "pp8", "tg2"]);
    assert_eq!(rows[0]["threads"], 1);
    assert_eq!(rows[3]["threads"], 2);
    for r in &rows {
        assert_eq!(r["samples_ts"].as_array().unwrap().len(), 2);
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn quantised_head_types_are_reported_in_each_row() {
    let json = |head: &str| {
        bench_rows(&["-p", "0", "-n", "2", "-r", "1", "--head-type", head]).swap_remove(0)
    };
    let (f16, q8) = (json("stored"), json("q8_0"));
    assert_eq!(f16["head_type"], "F16");
    assert_eq!(q8["head_type"], "Q8_0");
    assert!(
        q8["backend"].as_str().unwrap().ends_with("+ q8_0 head"),
        "{q8}"
    );
    assert!(q8["avg_ts"].as_f64().unwrap() > 0.0);
    for (arg, name) in [
        ("q6_k", "Q6_K"),
        ("q4_k", "Q4_K"),
        ("q4_k_rescored", "Q4_K"),
    ] {
        let row = json(arg);
        assert_eq!(row["head_type"], name);
        assert!(
            row["backend"]
                .as_str()
                .unwrap()
                .ends_with(&format!("+ {arg} head")),
            "{row}"
        );
    }
}

#[test]
fn unknown_head_type_is_refused_with_the_choices() {
    let out = cli(["bench", "--synthetic", "tiny", "--head-type", "q4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown head type 'q4'"), "{err}");
    assert!(
        err.contains("stored, q8_0, q6_k, q4_k, q4_k_rescored"),
        "{err}"
    );
}

#[test]
fn parallel_adds_batched_decode_rows() {
    let rows = bench_rows(&["-p", "0", "-n", "3", "-P", "1,2,4", "-r", "1"]);
    assert_eq!(tests(&rows), ["tg3", "tg3x2", "tg3x4"]);
    assert!(rows[2]["avg_ts"].as_f64().unwrap() > 0.0);
}

#[test]
fn probe_only_prints_the_read_bandwidth_per_thread_count() {
    let out = stdout_of(&mut cli([
        "bench",
        "--probe-only",
        "-t",
        "1,2",
        "--probe-mib",
        "8",
        "--probe-passes",
        "2",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, t) in lines.iter().zip([1, 2]) {
        // "probe threads T: X GB/s read (read/ISA, 8 MiB, best of 2)": what
        // scripts/bench/membw_check.sh parses.
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &fields[..3],
            ["probe", "threads", &format!("{t}:")],
            "{line}"
        );
        assert!(fields[3].parse::<f64>().unwrap() > 0.0, "{line}");
        assert_eq!(fields[4], "GB/s", "{line}");
        assert!(line.contains("(read/"), "{line}");
        assert!(line.ends_with(", 8 MiB, best of 2)"), "{line}");
    }

    let json = stdout_of(&mut cli([
        "bench",
        "--probe-only",
        "-t",
        "2",
        "--probe-mib",
        "4",
        "--probe-passes",
        "3",
        "--json",
    ]));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["threads"], 2);
    assert_eq!(rows[0]["bytes"], 4 << 20);
    assert_eq!(rows[0]["pass_gbs"].as_array().unwrap().len(), 3);
    assert!(rows[0]["bandwidth_gbs"].as_f64().unwrap() > 0.0);
}

#[test]
fn roofline_fields_are_in_the_json_tg_rows() {
    let rows = probed_rows(&["-p", "0", "-n", "2", "-r", "1", "-t", "1"]);
    let bw = rows[0]["bandwidth_gbs"].as_f64().unwrap();
    let roof = rows[0]["roofline_ts"].as_f64().unwrap();
    let pct = rows[0]["roofline_pct"].as_f64().unwrap();
    let ts = rows[0]["avg_ts"].as_f64().unwrap();
    assert!(bw > 0.0 && roof > 0.0);
    assert!(
        (pct - 100.0 * ts / roof).abs() < 1e-9 * pct.max(1.0),
        "{rows:?}"
    );
}

#[test]
fn probe_only_and_no_bandwidth_conflict() {
    let out = cli(["bench", "--probe-only", "--no-bandwidth"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--probe-only") && err.contains("--no-bandwidth"),
        "{err}"
    );
}

/// `-d` (llama-bench's depth): each test again after that many cached tokens, named
/// `pp8 @ d16`; the tg row's roofline counts the KV cache it reads besides the weights.
#[test]
fn depth_repeats_each_test_over_a_filled_cache() {
    let rows = bench_rows(&["-p", "8", "-n", "4", "-d", "0,16", "-r", "1", "-t", "1"]);
    assert_eq!(tests(&rows), ["pp8", "tg4", "pp8 @ d16", "tg4 @ d16"]);
    let depths: Vec<u64> = rows
        .iter()
        .map(|r| r["n_depth"].as_u64().unwrap())
        .collect();
    assert_eq!(depths, [0, 0, 16, 16]);
    // The roofline of a deeper tg row is lower: more bytes per token (the tiny preset's
    // KV cache: 2 x layers x kv_dim x positions x 4 bytes).
    let rows = probed_rows(&["-p", "0", "-n", "2", "-d", "0,64", "-r", "1", "-t", "1"]);
    let roof = |i: usize| rows[i]["roofline_ts"].as_f64().unwrap();
    assert!(roof(1) < roof(0), "{rows:?}");
    // A depth beyond the context is refused before anything runs.
    let out = cli(["bench", "--synthetic", "tiny", "-d", "100000", "-r", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("100128"));
}

/// `bench --synthetic tiny ARGS --json --no-bandwidth`: its rows.
fn bench_rows(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["bench", "--synthetic", "tiny"];
    all.extend_from_slice(args);
    all.extend(["--json", "--no-bandwidth"]);
    let out = stdout_of(&mut cli(all));
    match serde_json::from_str(&out).unwrap() {
        serde_json::Value::Array(rows) => rows,
        other => panic!("bench --json printed no array: {other}"),
    }
}

/// `bench --synthetic tiny ARGS --json` with a small, quick bandwidth probe: its rows.
fn probed_rows(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["bench", "--synthetic", "tiny"];
    all.extend_from_slice(args);
    all.extend(["--probe-mib", "8", "--probe-passes", "2", "--json"]);
    serde_json::from_str(&stdout_of(&mut cli(all))).unwrap()
}

/// The `test` names of bench rows.
fn tests(rows: &[serde_json::Value]) -> Vec<&str> {
    rows.iter().map(|r| r["test"].as_str().unwrap()).collect()
}
