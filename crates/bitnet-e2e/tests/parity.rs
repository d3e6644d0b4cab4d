//! One request, two front ends, one answer: the same generation run through `bitnet-cli run`
//! and through `bitnet-server`'s `/v1/completions` gives the same token ids, the same text
//! and the same finish reason, because both drive `bitnet_engine::Decoder` (sampling, text
//! stream, stop strings with OpenAI's earliest-occurrence rule, limits).
//!
//! The cases cover greedy and seeded sampling, stop lists (including `["\n\n", "."]` in both
//! orders, where the earliest occurrence matters), and `max_tokens` limits. Stop strings are
//! chosen so they really occur in the embedded model's output: a case that stops is asserted
//! to stop, so the test cannot pass by never meeting a stop.

use bitnet_e2e::{Server, run};
use serde_json::{Value, json};

/// One generation request in both spellings.
struct Case {
    name: &'static str,
    prompt: &'static str,
    max_tokens: usize,
    /// `None`: greedy.
    sampled: Option<Sampled>,
    stop: &'static [&'static str],
    /// The finish reason the case must end with (so each case tests what it claims).
    expect_finish: &'static str,
}

struct Sampled {
    temperature: f32,
    top_k: u32,
    top_p: f32,
    seed: u64,
}

const CASES: &[Case] = &[
    Case {
        name: "greedy, no stop, length limit",
        prompt: "Ownership in Rust",
        max_tokens: 24,
        sampled: None,
        stop: &[],
        expect_finish: "length",
    },
    Case {
        name: "greedy, stop list [\\n\\n, .]",
        prompt: "The borrow checker",
        max_tokens: 96,
        sampled: None,
        stop: &["\n\n", "."],
        expect_finish: "stop_string",
    },
    Case {
        name: "greedy, stop list [., \\n\\n]",
        prompt: "The borrow checker",
        max_tokens: 96,
        sampled: None,
        stop: &[".", "\n\n"],
        expect_finish: "stop_string",
    },
    Case {
        // One token (" value") completes both stop strings: the earliest occurrence
        // (" the value") wins, not the first of the list (before the shared decoder,
        // `bitnet-cli run` cut at "value" and printed " the" that the server did not).
        name: "greedy, one token completes two stops",
        prompt: "The borrow checker",
        max_tokens: 96,
        sampled: None,
        stop: &["value", " the value"],
        expect_finish: "stop_string",
    },
    Case {
        name: "seeded sampling, stop list [\\n\\n, .]",
        prompt: "A trait object",
        max_tokens: 96,
        sampled: Some(Sampled {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            seed: 7,
        }),
        stop: &["\n\n", "."],
        expect_finish: "stop_string",
    },
    Case {
        name: "seeded sampling, max_tokens 5",
        prompt: "fn main() {",
        max_tokens: 5,
        sampled: Some(Sampled {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 11,
        }),
        stop: &[],
        expect_finish: "length",
    },
];

/// What a front end produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    ids: Vec<u64>,
    text: String,
    finish: String,
}

fn through_cli(case: &Case, dir: &std::path::Path) -> Outcome {
    let json_out = dir.join(format!(
        "{}.json",
        case.name.replace(|c: char| !c.is_alphanumeric(), "_")
    ));
    let mut args: Vec<String> = vec![
        "run".into(),
        "--prompt".into(),
        case.prompt.into(),
        "-n".into(),
        case.max_tokens.to_string(),
        "--threads".into(),
        "1".into(),
        "--min-p".into(),
        "0".into(),
        "--json-out".into(),
        json_out.display().to_string(),
        // Only the generated text, as the server returns it (run echoes the prompt first by
        // default, as llama-cli does).
        "--no-display-prompt".into(),
    ];
    match &case.sampled {
        None => args.push("--greedy".into()),
        Some(s) => args.extend([
            "--temperature".into(),
            s.temperature.to_string(),
            "--top-k".into(),
            s.top_k.to_string(),
            "--top-p".into(),
            s.top_p.to_string(),
            "--seed".into(),
            s.seed.to_string(),
        ]),
    }
    for s in case.stop {
        args.push(format!("--stop={s}"));
    }
    let out = run("bitnet-cli", &args);
    assert!(
        out.status.success(),
        "{}: bitnet-cli run failed: {}",
        case.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = v["output"]["text"].as_str().unwrap().to_string();
    assert_eq!(
        stdout.strip_suffix('\n').unwrap_or(&stdout),
        text.strip_suffix('\n').unwrap_or(&text),
        "{}: what run prints is the recorded text",
        case.name
    );
    Outcome {
        ids: ids(&v["output"]["ids"]),
        text,
        finish: v["output"]["finish_reason"].as_str().unwrap().to_string(),
    }
}

fn through_server(case: &Case, server: &Server) -> Outcome {
    let mut body = json!({
        "prompt": case.prompt,
        "max_tokens": case.max_tokens,
        "stop": case.stop,
    });
    match &case.sampled {
        None => body["temperature"] = json!(0.0),
        Some(s) => {
            body["temperature"] = json!(s.temperature);
            body["top_k"] = json!(s.top_k);
            body["top_p"] = json!(s.top_p);
            body["seed"] = json!(s.seed);
        }
    }
    let resp = server.post_json("/v1/completions", &body);
    assert_eq!(resp.status, 200, "{}: {}", case.name, resp.body);
    let v = resp.json();
    let choice = &v["choices"][0];
    let finish = v["bitnet"]["finish_detail"].as_str().unwrap().to_string();
    let openai = choice["finish_reason"].as_str().unwrap();
    let expected_openai = if finish == "length" || finish == "context_full" {
        "length"
    } else {
        "stop"
    };
    assert_eq!(openai, expected_openai, "{}", case.name);
    Outcome {
        ids: ids(&v["bitnet"]["token_ids"]),
        text: choice["text"].as_str().unwrap().to_string(),
        finish,
    }
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("an id list, got {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn cli_and_server_give_the_same_text_and_finish_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--threads", "1"]);
    for case in CASES {
        let cli = through_cli(case, dir.path());
        let http = through_server(case, &server);
        assert_eq!(cli, http, "{}: CLI and server differ", case.name);
        assert_eq!(cli.finish, case.expect_finish, "{}: {cli:?}", case.name);
        if case.name == "greedy, one token completes two stops" {
            assert_eq!(cli.text, " is the same as", "cut before the earliest stop");
        }
        if case.expect_finish == "stop_string" {
            for s in case.stop {
                assert!(
                    !cli.text.contains(s),
                    "{}: the output holds stop string {s:?}: {:?}",
                    case.name,
                    cli.text
                );
            }
        } else {
            assert_eq!(cli.ids.len(), case.max_tokens, "{}", case.name);
        }
    }
}
