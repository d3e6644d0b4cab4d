//! `run`: determinism, the transformers greedy reference, output formats, prompt sources.

use crate::util::{cli, i2s, id_list, packed, reference_greedy, stdout_of};

#[test]
fn same_seed_gives_same_output_twice() {
    let args = [
        "run",
        "-m",
        "",
        "--tokens",
        "1,10,20",
        "--seed",
        "1234",
        "-n",
        "12",
        "--threads",
        "1",
        "--temperature",
        "1.5",
        "--top-k",
        "0",
        "--min-p",
        "0",
    ];
    let with_model = |m: &str| {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a[2] = m.to_string();
        a
    };
    let m = packed().display().to_string();
    let first = stdout_of(&mut cli(with_model(&m)));
    let second = stdout_of(&mut cli(with_model(&m)));
    assert_eq!(first, second);
    assert_eq!(first.split_whitespace().count(), 12, "{first}");
    // A different seed at this temperature gives a different sequence.
    let mut other = with_model(&m);
    other[6] = "99".into();
    assert_ne!(stdout_of(&mut cli(other)), first);
}

#[test]
fn same_seed_gives_same_text_with_a_tokenizer() {
    let run = || {
        stdout_of(&mut cli([
            "run",
            "-m",
            i2s().to_str().unwrap(),
            "--prompt",
            "hello",
            "--seed",
            "5",
            "-n",
            "10",
            "--threads",
            "1",
        ]))
    };
    let a = run();
    assert!(!a.is_empty());
    assert_eq!(a, run());
}

#[test]
fn greedy_matches_transformers_reference() {
    let (prompt, greedy) = reference_greedy(0);
    let out = stdout_of(&mut cli([
        "run",
        "-m",
        packed().to_str().unwrap(),
        "--tokens",
        &id_list(&prompt),
        "--greedy",
        "-n",
        "6",
        "--threads",
        "1",
    ]));
    let ids: Vec<u32> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    assert_eq!(ids, greedy[..6]);
    assert_eq!(ids, [120, 11, 11, 11, 11, 11]);
}

#[test]
fn json_out_records_prompt_output_and_timings() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = cli([
        "run",
        "-m",
        i2s().to_str().unwrap(),
        "--tokens",
        "1,10,20,30,40,50,60,70",
        "--greedy",
        "-n",
        "6",
        "--threads",
        "1",
        "--ids",
        "--json-out",
        json.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        "load ",
        "tokens/s",
        "seed ",
        "prompt 8 tokens",
        "generated 6 tokens",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from {stderr}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["prompt"]["ids"].as_array().unwrap().len(), 8);
    let ids: Vec<u64> = v["output"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let printed: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ids, printed);
    assert_eq!(v["output"]["finish_reason"], "length");
    assert_eq!(v["settings"]["temperature"], 0.0);
    assert!(v["timings"]["gen_tps"].as_f64().unwrap() > 0.0);
}

#[test]
fn prompt_from_stdin_and_file_agree() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.txt");
    std::fs::write(&file, "abc").unwrap();
    let model = i2s();
    let base = [
        "run",
        "-m",
        model.to_str().unwrap(),
        "--greedy",
        "-n",
        "5",
        "--threads",
        "1",
        "--ids",
    ];
    let from_stdin = stdout_of(cli(base).write_stdin("abc"));
    let mut with_file: Vec<&str> = base.to_vec();
    with_file.extend(["--prompt-file", file.to_str().unwrap()]);
    let from_file = stdout_of(&mut cli(with_file));
    assert_eq!(from_stdin, from_file);
    assert_eq!(from_file.split_whitespace().count(), 5);
}

#[test]
fn chat_from_a_pipe_answers_each_line() {
    let out = cli([
        "chat",
        "-m",
        i2s().to_str().unwrap(),
        "--greedy",
        "-n",
        "4",
        "--threads",
        "1",
    ])
    .write_stdin("hello\n/reset\nagain\nmore\n")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Three turns: three timing lines; the third reuses the cached prefix of the second.
    let turns: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(turns.len(), 3, "{stderr}");
    assert!(turns[0].contains("(0 reused)"), "{stderr}");
    assert!(!turns[2].contains("(0 reused)"), "{stderr}");
}

#[test]
fn closed_stdout_is_not_an_error() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet-cli"))
        .args([
            "run",
            "-m",
            packed().to_str().unwrap(),
            "--tokens",
            "1,2,3",
            "-n",
            "200",
            "--seed",
            "1",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
