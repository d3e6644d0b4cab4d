//! Bad input: one clear line, a non-zero exit, never a panic.

use crate::util::{assert_error, cli, i2s, packed};

#[test]
fn missing_model_file() {
    assert_error(
        &mut cli(["run", "-m", "/nonexistent/model.gguf", "--tokens", "1"]),
        1,
        "/nonexistent/model.gguf: no such file or directory",
    );
}

#[test]
fn text_file_is_not_a_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.gguf");
    std::fs::write(&file, "just some text, definitely not a model\n").unwrap();
    assert_error(
        &mut cli(["run", "-m", file.to_str().unwrap(), "--tokens", "1"]),
        1,
        "not a GGUF file",
    );
    assert_error(
        &mut cli(["inspect", file.to_str().unwrap()]),
        1,
        "not a GGUF file",
    );
}

#[test]
fn unsupported_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("llama.gguf");
    crate::misc::write_llama_gguf(&file);
    assert_error(
        &mut cli(["run", "-m", file.to_str().unwrap(), "--tokens", "1"]),
        1,
        "unsupported architecture 'llama'",
    );
    // inspect reads any GGUF, whatever its architecture.
    let out = cli(["inspect", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn prompt_longer_than_context() {
    let ids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_error(
        &mut cli([
            "run",
            "-m",
            packed().to_str().unwrap(),
            "--ctx",
            "8",
            "--tokens",
            &ids.join(","),
        ]),
        1,
        "the prompt has 20 tokens but the context holds 8",
    );
}

#[test]
fn context_larger_than_the_model_allows() {
    assert_error(
        &mut cli([
            "run",
            "-m",
            packed().to_str().unwrap(),
            "--ctx",
            "4096",
            "--tokens",
            "1",
        ]),
        1,
        "--ctx 4096 exceeds the model's context length of 256 tokens",
    );
}

#[test]
fn text_prompt_without_tokenizer() {
    assert_error(
        &mut cli(["run", "-m", packed().to_str().unwrap(), "--prompt", "hello"]),
        1,
        "this model has no tokenizer; give token ids with --tokens",
    );
}

#[test]
fn token_outside_vocabulary() {
    assert_error(
        &mut cli(["run", "-m", i2s().to_str().unwrap(), "--tokens", "1,600"]),
        1,
        "token id 600 is outside the vocabulary (size 512)",
    );
}

#[test]
fn invalid_top_p_is_a_usage_error() {
    assert_error(
        &mut cli([
            "run",
            "-m",
            i2s().to_str().unwrap(),
            "--tokens",
            "1",
            "--top-p",
            "1.5",
        ]),
        2,
        "invalid value '1.5' for '--top-p <P>': must be in (0, 1]",
    );
}

#[test]
fn unknown_synthetic_model() {
    assert_error(
        &mut cli(["bench", "--synthetic", "13b"]),
        1,
        "unknown synthetic model '13b' (known: 2b4t, 3b, 700m, tiny)",
    );
}

#[test]
fn ctx_size_and_its_short_spelling_size_the_context() {
    let ids: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    for flag in ["--ctx-size", "-c", "--ctx"] {
        assert_error(
            &mut cli([
                "run",
                "-m",
                packed().to_str().unwrap(),
                flag,
                "8",
                "--tokens",
                &ids.join(","),
            ]),
            1,
            "the prompt has 20 tokens but the context holds 8",
        );
    }
}

#[test]
fn huge_n_is_clamped_to_the_context() {
    for n in ["100000000000", "18446744073709551615"] {
        let out = cli([
            "run",
            "-m",
            packed().to_str().unwrap(),
            "-c",
            "16",
            "--greedy",
            "--ids",
            "-q",
            "-n",
            n,
            "--tokens",
            "1,2,3",
        ])
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "-n {n}: {stderr}");
        let ids = String::from_utf8_lossy(&out.stdout);
        let count = ids
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .count();
        assert!(count > 0 && count <= 13, "-n {n}: {ids}");
    }
}

#[test]
fn absurd_thread_count_is_refused() {
    assert_error(
        &mut cli([
            "run",
            "-m",
            i2s().to_str().unwrap(),
            "-t",
            "100000",
            "--tokens",
            "1",
        ]),
        1,
        "threads = 100000",
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_as_model_or_prompt_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = fifo.to_str().unwrap();
    // Without the check each of these blocks forever opening the FIFO.
    let timeout = std::time::Duration::from_secs(20);
    let i2s = i2s();
    for (args, message) in [
        (vec!["inspect", fifo], "not a regular file"),
        (
            vec!["run", "-m", i2s.to_str().unwrap(), "--prompt-file", fifo],
            "not a regular file",
        ),
        (
            vec!["tokenize", "-m", fifo, "--text", "hello"],
            "not a regular file",
        ),
        (vec!["run", "-m", fifo, "--tokens", "1"], "not a model"),
    ] {
        assert_error(cli(&args).timeout(timeout), 1, message);
    }
}

#[test]
fn hostile_sizes_in_a_checkpoint_or_gguf_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(packed()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let config = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    cfg["num_hidden_layers"] = (1u64 << 24).into();
    std::fs::write(&config, cfg.to_string()).unwrap();
    assert_error(
        &mut cli(["run", "-m", dir.path().to_str().unwrap(), "--tokens", "1"]),
        1,
        "'num_hidden_layers'",
    );
}
