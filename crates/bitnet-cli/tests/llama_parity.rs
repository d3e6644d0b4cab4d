//! What a llama.cpp user types (issue 16, part 1): llama-cli's flag spellings, the prompt
//! echoed before the output, `--kernel list`, one output-file policy checked before any work,
//! `tokenize | detokenize` through a real pipe, man pages, and `--log-format json` for every
//! stderr line. All on the embedded model or the tiny fixture, a few tokens each.

use std::process::{Command, Stdio};

use crate::util::{assert_error, cli, i2s, stdout_of};

/// `run` with the llama-cli spellings equals `run` with ours, flag for flag.
#[test]
fn llama_cli_spellings_are_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("p.txt");
    std::fs::write(&prompt, "A closure is\n").unwrap();
    let ours = stdout_of(&mut cli([
        "run",
        "--prompt-file",
        prompt.to_str().unwrap(),
        "--max-tokens",
        "6",
        "--ctx-size",
        "64",
        "--threads",
        "1",
        "--temperature",
        "0.7",
        "--top-k",
        "20",
        "--top-p",
        "0.9",
        "--min-p",
        "0.1",
        "--repeat-penalty",
        "1.1",
        "--seed",
        "42",
    ]));
    let llama = stdout_of(&mut cli([
        "run",
        "-f",
        prompt.to_str().unwrap(),
        "-n",
        "6",
        "-c",
        "64",
        "-t",
        "1",
        "--temp",
        "0.7",
        "--top-k",
        "20",
        "--top-p",
        "0.9",
        "--min-p",
        "0.1",
        "--repeat-penalty",
        "1.1",
        "--seed",
        "42",
    ]));
    assert_eq!(llama, ours);
    let long = stdout_of(&mut cli([
        "run",
        "--file",
        prompt.to_str().unwrap(),
        "--n-predict",
        "6",
        "-c",
        "64",
        "-t",
        "1",
        "--temp",
        "0.7",
        "--top-k",
        "20",
        "--top-p",
        "0.9",
        "--min-p",
        "0.1",
        "--repeat-penalty",
        "1.1",
        "-s",
        "42",
    ]));
    assert_eq!(long, ours);
    assert!(ours.starts_with("A closure is"), "{ours:?}");
}

/// The same spellings reach chat's and perplexity's flags (parse-level: `--help` lists them).
#[test]
fn aliases_are_listed_in_help() {
    let run = stdout_of(&mut cli(["run", "--help"]));
    for alias in [
        "--temp",
        "--n-predict",
        "-f, --prompt-file",
        "--file",
        "-c, --ctx-size",
    ] {
        assert!(run.contains(alias), "run --help lacks {alias}: {run}");
    }
    assert!(
        run.contains("physical core"),
        "thread default said in --help: {run}"
    );
    let chat = stdout_of(&mut cli(["chat", "--help"]));
    assert!(
        chat.contains("--temp") && chat.contains("--n-predict"),
        "{chat}"
    );
    let ppl = stdout_of(&mut cli(["perplexity", "--help"]));
    assert!(
        ppl.contains("-t, --threads") && ppl.contains("-c, --ctx-size"),
        "{ppl}"
    );
}

/// `run` prints the prompt then the continuation; `--no-display-prompt` only the latter;
/// ids mode prints only generated ids, as before.
#[test]
fn prompt_is_echoed_unless_turned_off() {
    let base = ["run", "-p", "Ownership in Rust", "-n", "8", "--greedy"];
    let echoed = stdout_of(&mut cli(base));
    let mut args = base.to_vec();
    args.push("--no-display-prompt");
    let bare = stdout_of(&mut cli(&args));
    assert!(!bare.trim().is_empty());
    assert_eq!(echoed, format!("Ownership in Rust{bare}"));
    let mut ids = base.to_vec();
    ids.push("--ids");
    let ids = stdout_of(&mut cli(&ids));
    assert_eq!(ids.split_whitespace().count(), 8, "{ids}");
    assert!(
        ids.split_whitespace().all(|t| t.parse::<u32>().is_ok()),
        "{ids}"
    );
}

#[test]
fn kernel_list_names_the_ids_and_unknown_ids_are_refused_with_them() {
    let list = stdout_of(&mut cli(["run", "--kernel", "list"]));
    assert!(list.contains("i2s/scalar"), "{list}");
    assert!(list.contains("supported (default)"), "{list}");
    let bench = stdout_of(&mut cli(["bench", "--kernel", "list"]));
    assert_eq!(bench, list);
    assert_error(
        &mut cli(["run", "-p", "x", "--kernel", "i2s/bogus"]),
        1,
        "--kernel i2s/bogus: not a kernel this CPU runs (available: ",
    );
    let out = cli(["run", "-p", "x", "--kernel", "i2s/bogus"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("i2s/scalar"));
}

/// Every output path is checked before the model loads: a missing directory, a directory, and
/// an existing file without `--force` fail at once and leave nothing behind; `--force`
/// replaces the file.
#[test]
fn output_files_are_checked_first_and_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("no/such/dir/out.json");
    // The model path does not exist either: the output check must come first.
    for flag in ["--json-out", "--receipt"] {
        assert_error(
            cli(["run", "-m", "/nonexistent.gguf", "-p", "x", flag]).arg(&missing),
            1,
            &format!("{flag} {}: the directory", missing.display()),
        );
        assert_error(
            cli(["run", "-p", "x", "-n", "1", flag]).arg(d),
            1,
            "is a directory",
        );
    }
    let existing = d.join("r.json");
    std::fs::write(&existing, "keep").unwrap();
    assert_error(
        cli(["run", "-m", "/nonexistent.gguf", "-p", "x", "--json-out"]).arg(&existing),
        1,
        "the file exists (add --force to replace it)",
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep");
    stdout_of(
        cli([
            "run",
            "-p",
            "x",
            "-n",
            "2",
            "--seed",
            "1",
            "--force",
            "--json-out",
        ])
        .arg(&existing),
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&existing).unwrap()).unwrap();
    assert_eq!(v["output"]["ids"].as_array().unwrap().len(), 2);

    // logits --out: same policy (it used to overwrite silently).
    let npy = d.join("l.npy");
    std::fs::write(&npy, "old").unwrap();
    assert_error(
        cli([
            "logits",
            "-m",
            "/nonexistent.gguf",
            "--tokens",
            "1,2",
            "--out",
        ])
        .arg(&npy),
        1,
        "--out",
    );
    assert_eq!(std::fs::read_to_string(&npy).unwrap(), "old");
    stdout_of(cli(["logits", "--tokens", "1,2", "--force", "--out"]).arg(&npy));
    assert!(std::fs::read(&npy).unwrap().starts_with(b"\x93NUMPY"));
    // Nothing but the two outputs: no temporary files left.
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 2);
}

/// `bitnet-cli tokenize | bitnet-cli detokenize` through a real pipe between two processes,
/// plain and --json, on the embedded model.
#[test]
fn tokenize_pipes_into_detokenize() {
    let text = "Ownership in Rust is checked at compile time.";
    for extra in [&[][..], &["--json"][..]] {
        let mut tokenize = Command::new(env!("CARGO_BIN_EXE_bitnet-cli"))
            .args(["tokenize", "--no-bos", "--text", text])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let detok = Command::new(env!("CARGO_BIN_EXE_bitnet-cli"))
            .arg("detokenize")
            .stdin(tokenize.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(tokenize.wait().unwrap().success());
        assert!(
            detok.status.success(),
            "{}",
            String::from_utf8_lossy(&detok.stderr)
        );
        assert_eq!(
            String::from_utf8(detok.stdout).unwrap(),
            format!("{text}\n")
        );
    }
    // Comma lists and JSON-ish brackets, with and without a BOS that --skip-special drops.
    let ids = stdout_of(&mut cli(["tokenize", "--text", "hello world"]));
    let ids: Vec<&str> = ids.split_whitespace().collect();
    for spelled in [
        ids.join(","),
        format!("[{}]", ids.join(", ")),
        ids.join("\n"),
    ] {
        let out = stdout_of(&mut cli([
            "detokenize",
            "--skip-special",
            "--tokens",
            &spelled,
        ]));
        assert_eq!(out, "hello world\n", "{spelled:?}");
    }
    assert_error(
        &mut cli(["detokenize", "--tokens", "1 two 3"]),
        1,
        "'two' is not a token id",
    );
}

#[test]
fn man_page_and_completions() {
    let page = stdout_of(&mut cli(["man"]));
    assert!(
        page.contains(".TH bitnet-cli 1"),
        "{}",
        &page[..page.len().min(300)]
    );
    assert!(page.contains("verify\\-receipt"), "subcommands are listed");
    man_parses(&page);
    for shell in ["bash", "zsh", "fish"] {
        let out = stdout_of(&mut cli(["completions", shell]));
        assert!(
            out.contains("bitnet-cli") && out.contains("no-display-prompt"),
            "{shell}"
        );
    }
}

/// `man -l` renders the page when man is installed (Debian's man-db); the `.TH` header is
/// checked either way.
pub fn man_parses(page: &str) {
    assert!(page.lines().any(|l| l.starts_with(".TH ")), "no .TH header");
    let Ok(mut man) = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return;
    };
    use std::io::Write;
    man.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("NAME"));
}

/// With `--log-format json` every stderr line is a JSON object: the embedded-model notice,
/// the timing summary, an error report, and a usage error from clap.
#[test]
fn json_logs_make_every_stderr_line_json() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, bool)> = vec![
        // Success: the notice and the timing line.
        (
            args(&["run", "-p", "x", "-n", "2", "--log-format", "json", "-v"]),
            true,
        ),
        // Failure after the model loaded (the notice, then the error).
        (
            args(&[
                "run",
                "-p",
                "a prompt longer than the context",
                "-c",
                "2",
                "--log-format",
                "json",
            ]),
            false,
        ),
        // Failure before: a bad output directory.
        (
            args(&["run", "-p", "x", "--log-format=json", "--json-out"])
                .into_iter()
                .chain([dir.path().join("a/b.json").display().to_string()])
                .collect(),
            false,
        ),
        // A usage error clap reports.
        (
            args(&["--log-format", "json", "run", "--no-such-flag"]),
            false,
        ),
    ];
    for (argv, ok) in cases {
        let out = cli(&argv).output().unwrap();
        assert_eq!(out.status.success(), ok, "{argv:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.is_empty(), "{argv:?}");
        assert!(
            !stderr.contains('\u{1b}'),
            "no colour codes off a terminal: {stderr}"
        );
        let mut levels = Vec::new();
        for line in stderr.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{argv:?}: not JSON ({e}): {line}"));
            assert!(v["fields"]["message"].is_string(), "{line}");
            levels.push(v["level"].as_str().unwrap().to_string());
        }
        assert_eq!(
            levels.contains(&"ERROR".to_string()),
            !ok,
            "{argv:?}: {stderr}"
        );
    }
}

/// Text logs carry no colour codes when stderr is not a terminal (a pipe or a log file).
#[test]
fn text_logs_have_no_colour_off_a_terminal() {
    let out = cli(["run", "-p", "x", "-n", "2", "-vv"]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("model loaded"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `bench` defaults to the embedded model like every other subcommand.
#[test]
fn bench_runs_the_embedded_model_without_flags() {
    let out = stdout_of(&mut cli([
        "bench",
        "-p",
        "4",
        "-n",
        "4",
        "-r",
        "1",
        "--no-bandwidth",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows[0].to_string().contains("bitnet-rust-docs-5m"), "{out}");
    // The default thread count for a 5 MB model is one.
    assert_eq!(rows[0]["threads"], 1, "{out}");
    let _ = i2s();
}
