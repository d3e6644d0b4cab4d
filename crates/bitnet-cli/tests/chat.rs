//! `chat` on a real pseudo-terminal (rexpect): line editing, history, Ctrl-C, Ctrl-D and the
//! slash commands, as a user at a terminal would drive them; and context shift, from a pipe.
//! Every test uses the embedded model with greedy sampling, so replies are deterministic.

use std::path::Path;
use std::process::Command;

use rexpect::reader::ReadUntil;
use rexpect::session::PtySession;

use crate::util::cli;

/// Guards against a hang only (a test that waits this long has failed anyway).
const TIMEOUT_MS: u64 = 60_000;

/// The line editor's prompt as it is drawn (clear line, "> ").
const PROMPT: &str = "\x1b[K> ";

/// `bitnet-cli chat` on the embedded model in a pty, greedy, with its history under `data`.
fn spawn(data: &Path, extra: &[&str]) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet-cli"));
    cmd.args(["chat", "--greedy", "--seed", "1"])
        .args(extra)
        .env("XDG_DATA_HOME", data)
        .env("HOME", data)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    let mut p = rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawns in a pty");
    p.exp_string(PROMPT).expect("first prompt");
    p
}

/// Sends `line` and Enter, then waits for the turn's timing line and the next prompt; returns
/// what was printed in between.
fn turn(p: &mut PtySession, keys: &str) -> String {
    p.send(keys).unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    let out = p.exp_string(" tokens/s | ").expect("a timing line");
    p.exp_string(PROMPT).expect("the prompt again");
    out
}

/// Ctrl-D at the prompt; asserts exit code 0 and that the "> " line was ended.
fn quit(p: &mut PtySession) {
    p.send_control('d').unwrap();
    let rest = p.exp_eof().expect("exits");
    assert!(rest.ends_with("\r\n"), "shell prompt would follow {rest:?}");
    exited_0(p);
}

/// Asserts the process has exited with code 0 (nix's `WaitStatus` is not re-exported by
/// rexpect, so its debug form `Exited(Pid(N), 0)` is checked).
fn exited_0(p: &PtySession) {
    let status = format!("{:?}", p.process().wait().unwrap());
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 0)"),
        "{status}"
    );
}

fn saved(p: &mut PtySession, file: &Path) -> Vec<(String, String)> {
    p.send_line(&format!("/save! {}", file.display())).unwrap();
    p.exp_string("(conversation saved to").expect("saved");
    p.exp_string(PROMPT).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn user_messages(messages: &[(String, String)]) -> Vec<&str> {
    messages
        .iter()
        .filter(|(r, _)| r == "user")
        .map(|(_, c)| c.as_str())
        .collect()
}

#[test]
fn line_editing_and_history_never_reach_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &["-n", "4"]);
    // Backspace fixes a typo; three Left arrows move into the word; Up Up recalls "hello".
    turn(&mut p, "hellx\x7fo");
    turn(&mut p, "wrld\x1b[D\x1b[D\x1b[Do");
    turn(&mut p, "\x1b[A\x1b[A");
    let messages = saved(&mut p, &dir.path().join("c.json"));
    assert_eq!(user_messages(&messages), ["hello", "world", "hello"]);
    assert_eq!(messages.len(), 6, "{messages:?}");
    quit(&mut p);
    // The history file keeps the lines for the next session.
    let history =
        std::fs::read_to_string(dir.path().join("bitnet-rs/chat_history")).expect("history file");
    assert!(
        history.contains("hello") && history.contains("world"),
        "{history}"
    );
}

#[test]
fn no_history_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &["-n", "2", "--no-history"]);
    turn(&mut p, "hello");
    quit(&mut p);
    assert!(!dir.path().join("bitnet-rs").exists());
}

#[test]
fn ctrl_c_stops_only_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    // A reply runs until the context is full (about 200 tokens), so there is time to stop it:
    // about 0.6 s with the scalar kernel (the SIMD ones write it in 50 ms, which a test process
    // descheduled on a busy machine could miss every time).
    let mut p = spawn(
        dir.path(),
        &["-n", "100000", "--quiet", "--kernel", "i2s/scalar"],
    );
    // Ctrl-C is sent as soon as the line editor has given the terminal back (it switches
    // bracketed paste off then). Should the whole reply be written before the key arrives, the
    // Ctrl-C lands at the prompt instead (a hint, no exit); then the next message tries again.
    let mut stopped = false;
    for _ in 0..10 {
        p.send("hello\r").unwrap();
        p.flush().unwrap();
        p.exp_string("\x1b[?2004l").unwrap();
        p.send_control('c').unwrap();
        let (_, found) = p
            .exp_any(vec![
                ReadUntil::String("(reply stopped".into()),
                ReadUntil::String("(Ctrl-C again".into()),
            ])
            .unwrap();
        p.exp_string(PROMPT).unwrap();
        if found.starts_with("(reply stopped") {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "no Ctrl-C arrived while a reply was written");
    // The chat goes on: the partial reply is in the conversation and the next turn answers.
    let file = dir.path().join("c.json");
    let before = saved(&mut p, &file);
    let (role, partial) = before.last().unwrap();
    assert_eq!(role, "assistant");
    p.send("again\r").unwrap();
    p.flush().unwrap();
    p.exp_string("\x1b[?2004l").unwrap();
    let turn = p.exp_string(PROMPT).unwrap();
    let after = saved(&mut p, &file);
    assert_eq!(after[after.len() - 2].1, "again");
    if turn.contains("context full: dropped") {
        // The stop came late, the context was nearly full, and the new turn needed room: the
        // oldest turns (the stopped one among them) went, and the chat said so.
        assert!(after.len() <= before.len(), "{after:?}");
    } else {
        assert_eq!(after.len(), before.len() + 2);
        assert_eq!(&after[before.len() - 1].1, partial);
    }
    quit(&mut p);
}

#[test]
fn ctrl_c_at_the_prompt_hints_then_quits() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &["-n", "2"]);
    p.send("half a line").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("(Ctrl-C again, Ctrl-D or /exit quits)")
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
    exited_0(&p);
}

#[test]
fn clear_help_and_save() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.json");
    let mut p = spawn(dir.path(), &["-n", "3", "--system", "You answer in Rust."]);
    p.send_line("/help").unwrap();
    p.exp_string("/save! FILE").unwrap();
    p.exp_string(PROMPT).unwrap();
    turn(&mut p, "first");
    turn(&mut p, "second");
    p.send_line(&format!("/save {}", file.display())).unwrap();
    p.exp_string("(conversation saved to").unwrap();
    p.exp_string(PROMPT).unwrap();
    // Refused without the "!": the file keeps the first save.
    p.send_line("/clear").unwrap();
    p.exp_string("(conversation cleared)").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line(&format!("/save {}", file.display())).unwrap();
    p.exp_string("already exists (use /save! FILE to replace it)")
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let roles: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(v[0]["content"], "You answer in Rust.");
    // After /clear only the system prompt is left of the earlier conversation.
    turn(&mut p, "third");
    let messages = saved(&mut p, &file);
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0].0, "system");
    assert_eq!(user_messages(&messages), ["third"]);
    p.send_line("/nope").unwrap();
    p.exp_string("unknown command /nope").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("/exit").unwrap();
    p.exp_eof().unwrap();
    exited_0(&p);
}

#[test]
fn a_message_too_long_for_the_context_keeps_the_chat_alive() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &["-n", "2", "-c", "32"]);
    p.send_line(&"word ".repeat(40)).unwrap();
    p.exp_string("but the context holds 32 (shorten the prompt, or raise -c/--ctx-size up to the model's 256)")
        .unwrap();
    p.exp_string(PROMPT).unwrap();
    turn(&mut p, "hi");
    quit(&mut p);
}

#[test]
fn context_shift_drops_the_oldest_turns_and_keeps_answering() {
    let input = "first question\nsecond question\nthird question\nfourth question\nfifth question\nsixth question\n";
    let out = cli([
        "chat",
        "--greedy",
        "--seed",
        "1",
        "-c",
        "128",
        "-n",
        "24",
        "--system",
        "Be brief.",
    ])
    .write_stdin(input)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Every message got an answer, and some turns made room by dropping the oldest ones.
    let timings = stderr.lines().filter(|l| l.starts_with('[')).count();
    assert_eq!(timings, 6, "{stderr}");
    let shifts: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("context full: dropped "))
        .collect();
    assert!(!shifts.is_empty(), "{stderr}");
    assert!(
        shifts
            .iter()
            .all(|l| l.ends_with("(the context holds 128 tokens)")),
        "{stderr}"
    );
    // The system prompt stays: after a shift, the turn still reuses its tokens from the cache
    // (the rendered conversation starts the same) and processes only what follows.
    let lines: Vec<&str> = stderr.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("context full: dropped ") {
            let timing = lines[i + 1];
            let reused: usize = timing
                .split_once(" new prompt tokens (")
                .and_then(|(_, rest)| rest.split_once(" reused)"))
                .map(|(n, _)| n.parse().unwrap())
                .unwrap_or_else(|| panic!("{timing}"));
            assert!(reused > 0, "{stderr}");
        }
    }
    // The embedded model has no chat template: the user is told which format is used instead.
    assert!(
        stderr.contains(
            "warning: the model has no chat template; using the BitNet b1.58 2B4T format"
        ),
        "{stderr}"
    );
}

#[test]
fn a_reply_cut_by_the_full_context_is_said_and_the_next_turn_shifts() {
    let out = cli(["chat", "--greedy", "--seed", "1", "-c", "64", "-n", "1000"])
        .write_stdin("hello\nand then?\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("context full: the reply was cut; the next turn drops the oldest turns"),
        "{stderr}"
    );
    assert!(
        stderr.contains("context full: dropped 1 oldest turn (the context holds 64 tokens)"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with('[')).count(),
        2,
        "{stderr}"
    );
}
