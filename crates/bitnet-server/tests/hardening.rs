//! Issue 14, server side: hostile clients, hostile model files and broken pipes against the
//! real binary on 127.0.0.1. Each test reproduces one reported failure (a broken log pipe,
//! runaway chat templates, slowloris bodies, big prompts on the async workers, receipt-lookup
//! scans, the cross-key prefix-cache oracle, shutdown dropping stream data, bearer parsing).
//! The HTTP client is a few lines over `TcpStream`, so a test can hold a connection half-sent
//! or read a stream slowly.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use serde_json::{Value, json};

/// A running binary; killed on drop unless it exited.
struct Srv {
    child: Child,
    client: Client,
}

impl std::ops::Deref for Srv {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Requests to one server (cloned into client threads).
#[derive(Clone)]
struct Client {
    addr: String,
}

/// The binary under test (`BITNET_TEST_SERVER_BIN` overrides it, to run these tests against
/// another build, e.g. the code before a fix).
fn server_bin() -> PathBuf {
    std::env::var_os("BITNET_TEST_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bitnet-server")))
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port (stderr discarded unless `stderr` says otherwise).
fn start_with(model: &Path, extra: &[&str], stderr: Stdio, log: &str) -> Srv {
    let mut child = Command::new(server_bin())
        .args(["--model", model.to_str().unwrap(), "--port", "0"])
        .args(["--threads", "1", "--no-tune"])
        .args(extra)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawns");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reads the listening line");
    let addr = line
        .trim()
        .strip_prefix("bitnet-server listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    let srv = Srv {
        child,
        client: Client { addr },
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while srv.get("/ready").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(30));
    }
    srv
}

fn start(extra: &[&str]) -> Srv {
    start_with(&fixture(), extra, Stdio::null(), "warn")
}

impl Client {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// One request on its own connection; (status, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut s = self.connect();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        parse_response(&out)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], b"")
    }

    fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
        let (st, text) = self.request("POST", path, headers, body.to_string().as_bytes());
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

impl Srv {
    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the exit after a signal; its status.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Status and body of a raw HTTP/1.1 response (chunked bodies de-chunked).
fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The fixture with `tokenizer.chat_template` replaced by `template`, written into `dir`.
fn gguf_with_template(dir: &Path, template: &str) -> PathBuf {
    use bitnet_gguf::{GgufFile, TensorSpec};
    let f = GgufFile::open(fixture()).unwrap();
    let mut meta: Vec<(String, bitnet_gguf::Value)> = f
        .metadata()
        .iter()
        .filter(|(k, _)| k != "tokenizer.chat_template")
        .cloned()
        .collect();
    meta.push((
        "tokenizer.chat_template".into(),
        bitnet_gguf::Value::String(template.into()),
    ));
    let tensors: Vec<(TensorSpec, &[u8])> = f
        .tensors()
        .iter()
        .map(|t| {
            let spec = TensorSpec {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ggml_type: t.ggml_type,
            };
            (spec, f.tensor_data(t))
        })
        .collect();
    let path = dir.join("hostile.gguf");
    std::fs::write(&path, bitnet_gguf::to_bytes(&meta, &tensors).unwrap()).unwrap();
    path
}

/// Worst `/health` latency while `busy` runs on other threads.
fn health_latency_during<F: FnOnce() + Send + 'static>(srv: &Srv, busy: Vec<F>) -> Duration {
    let handles: Vec<_> = busy.into_iter().map(std::thread::spawn).collect();
    let mut worst = Duration::ZERO;
    while handles.iter().any(|h| !h.is_finished()) {
        let t = Instant::now();
        assert_eq!(srv.get("/health").0, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    for h in handles {
        h.join().unwrap();
    }
    worst
}

#[test]
fn a_broken_log_pipe_neither_panics_nor_wedges_the_server() {
    let mut srv = start_with(&fixture(), &[], Stdio::piped(), "debug");
    // The reader of stderr goes away: every log line from now on meets EPIPE.
    drop(srv.child.stderr.take());
    for i in 0..12 {
        let (st, v) = srv.post(
            "/v1/completions",
            &json!({"prompt": format!("hello {i}"), "max_tokens": 3}),
            &[],
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(srv.get("/health").0, 200);
    }
    // An unknown field is ignored with a warning (a log line into the broken pipe), a bad
    // value is refused.
    let (st, v) = srv.post(
        "/v1/completions",
        &json!({"prompt": "x", "max_tokens": 1, "bogus": 1}),
        &[],
    );
    assert_eq!(st, 200, "{v}");
    let (st, _) = srv.post("/v1/completions", &json!({"prompt": "x", "n": 0}), &[]);
    assert!(st >= 400);
    srv.sigterm();
    assert!(srv.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn stdout_and_stderr_broken_from_the_start() {
    // Both pipes' readers are gone before the server writes its first line (the listening
    // line on stdout, the embedded-model notice on stderr): it must serve anyway.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let (err_r, err_w) = std::io::pipe().unwrap();
    drop((out_r, err_r));
    let child = Command::new(server_bin())
        .args(["--port", &port.to_string(), "--threads", "1", "--no-tune"])
        .env("RUST_LOG", "info")
        .stdout(out_w)
        .stderr(err_w)
        .spawn()
        .unwrap();
    let mut srv = Srv {
        child,
        client: Client {
            addr: format!("127.0.0.1:{port}"),
        },
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            panic!("the server died: {st}");
        }
        if TcpStream::connect(&srv.addr).is_ok() && srv.get("/ready").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (st, v) = srv.post(
        "/v1/completions",
        &json!({"prompt": "hi", "max_tokens": 2}),
        &[],
    );
    assert_eq!(st, 200, "{v}");
    srv.sigterm();
    assert!(srv.wait_exit(Duration::from_secs(10)).success());
}

/// 10^10 loop iterations: without fuel the render never ends.
const ENDLESS: &str =
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
/// Prints a string that doubles every iteration (2^64 bytes without a cap).
const DOUBLING: &str = "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}\
    {{ ns.s }}{% set ns.s = ns.s ~ ns.s %}{% endfor %}";

#[test]
fn hostile_chat_templates_answer_500_and_health_stays_fast() {
    for (template, what) in [(ENDLESS, "fuel"), (DOUBLING, "output")] {
        let dir = tempfile::tempdir().unwrap();
        let model = gguf_with_template(dir.path(), template);
        let mut srv = start_with(&model, &["--http-workers", "2"], Stdio::null(), "warn");
        let client = srv.client.clone();
        let chat = move || {
            let (st, v) = client.post(
                "/v1/chat/completions",
                &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
                &[],
            );
            assert_eq!(st, 500, "{v}");
            assert_eq!(v["error"]["code"], "chat_template_limit", "{v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(&format!("{what} limit")), "{msg}");
        };
        let worst = health_latency_during(&srv, vec![chat.clone(), chat]);
        assert!(worst < Duration::from_secs(1), "/health took {worst:?}");
        srv.sigterm();
        assert!(srv.wait_exit(Duration::from_secs(10)).success());
    }
}

#[test]
fn slowloris_bodies_time_out_and_health_still_answers() {
    let srv = start(&["--body-timeout", "1", "--max-connections", "256"]);
    // 60 clients send their headers and a few bytes of a 1000-byte body, then stall.
    let mut slow: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut s = srv.connect();
            s.write_all(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 1000\r\n\r\n{\"prompt\": \"",
            )
            .unwrap();
            s
        })
        .collect();
    let t = Instant::now();
    assert_eq!(srv.get("/health").0, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "/health took {:?}",
        t.elapsed()
    );
    // Each stalled body is answered 408 and its connection closed, after about a second.
    let t = Instant::now();
    for s in &mut slow {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let (status, body) = parse_response(&out);
        assert_eq!(status, 408, "{body}");
        assert!(body.contains("request_timeout"), "{body}");
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn big_prompts_are_tokenised_off_the_http_workers() {
    let srv = start(&["--http-workers", "2", "--max-body-bytes", "4000000"]);
    let client = srv.client.clone();
    // Two large prompts occupy both HTTP workers unless tokenising runs elsewhere.
    let big = move || {
        let prompt = "the quick brown fox jumps over the lazy dog ".repeat(8000);
        let (st, v) = client.post(
            "/v1/completions",
            &json!({"prompt": prompt, "max_tokens": 1}),
            &[],
        );
        assert!(st >= 400, "{v}");
        assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");
    };
    let worst = health_latency_during(&srv, vec![big.clone(), big]);
    assert!(worst < Duration::from_secs(1), "/health took {worst:?}");
}

#[cfg(all(unix, feature = "receipts"))]
#[test]
fn receipt_lookups_use_the_index_and_the_log_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("receipts.jsonl");
    // 150,000 records (~36 MB) from "earlier runs", world-readable.
    let pad = "p".repeat(200);
    let mut text = String::new();
    for i in 0..150_000 {
        text.push_str(&format!(
            "{{\"schema_version\":2,\"kind\":\"kv_eviction\",\"id\":\"evict-old{i}\",\"pad\":\"{pad}\"}}\n"
        ));
    }
    std::fs::write(&log, text).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
    let srv = start(&["--receipts-log", log.to_str().unwrap()]);
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "receipts log mode {mode:o}");
    // An old record is read from its offset.
    let (st, body) = srv.get("/v1/receipts/evict-old77777");
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], "evict-old77777");
    // Misses cost a hash lookup, not a scan of 36 MB.
    let t = Instant::now();
    for i in 0..20 {
        let (st, body) = srv.get(&format!("/v1/receipts/chatcmpl-missing{i}"));
        assert_eq!(st, 404, "{body}");
    }
    let per_miss = t.elapsed() / 20;
    assert!(
        per_miss < Duration::from_millis(40),
        "a miss took {per_miss:?}"
    );
    // New records are indexed as they are written.
    let (st, v) = srv.post(
        "/v1/completions",
        &json!({"prompt": "hi", "max_tokens": 2}),
        &[],
    );
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().unwrap();
    assert_eq!(srv.get(&format!("/v1/receipts/{id}")).0, 200);
}

#[cfg(feature = "receipts")]
#[test]
fn prefix_cache_and_receipts_are_partitioned_per_key() {
    let a = [("Authorization", "Bearer key-alice")];
    let b = [("Authorization", "bearer key-bob")];
    let secret = "the password is swordfish and the vault code is 1234 5678 9012 ".repeat(2);
    let guess = format!("{secret}?");
    let cached = |v: &Value| {
        v["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
    };
    for shared in [false, true] {
        let mut args = vec!["--api-key", "key-alice,key-bob", "--receipts-log"];
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("r.jsonl");
        args.push(log.to_str().unwrap());
        if shared {
            args.push("--share-prefix-cache");
        }
        let srv = start(&args);
        let (st, va) = srv.post(
            "/v1/completions",
            &json!({"prompt": secret, "max_tokens": 1}),
            &a,
        );
        assert_eq!(st, 200, "{va}");
        let (st, vb) = srv.post(
            "/v1/completions",
            &json!({"prompt": guess, "max_tokens": 1}),
            &b,
        );
        assert_eq!(st, 200, "{vb}");
        if shared {
            assert!(cached(&vb) >= 16, "{vb}");
        } else {
            assert_eq!(cached(&vb), 0, "bob learned about alice's prompt: {vb}");
            // Alice's own next request still reuses her prefix.
            let (_, va2) = srv.post(
                "/v1/completions",
                &json!({"prompt": guess, "max_tokens": 1}),
                &a,
            );
            assert!(cached(&va2) >= 16, "{va2}");
        }
        // Receipts: only the key that made one reads it.
        let id = va["id"].as_str().unwrap();
        let path = format!("/v1/receipts/{id}");
        assert_eq!(srv.request("GET", &path, &a, b"").0, 200);
        assert_eq!(srv.request("GET", &path, &b, b"").0, 404);
        assert_eq!(srv.get(&path).0, 401);
        let (_, list) = srv.request("GET", "/v1/receipts", &b, b"");
        assert!(!list.contains(id), "{list}");
        let (_, list) = srv.request("GET", "/v1/receipts", &a, b"");
        assert!(list.contains(id), "{list}");
    }
}

#[test]
fn bearer_scheme_is_case_insensitive_and_errors_are_400() {
    let srv = start(&["--api-key", "sekret"]);
    let body = json!({"prompt": "x", "max_tokens": 1});
    for (value, want) in [
        ("Bearer sekret", 200),
        ("bearer sekret", 200),
        ("BEARER  sekret", 200),
        ("Bearer sekreT", 401),
        ("Bearer sekret-and-more", 401),
        ("Bearer s", 401),
        ("Basic sekret", 401),
        ("sekret", 401),
    ] {
        let (st, v) = srv.post("/v1/completions", &body, &[("Authorization", value)]);
        assert_eq!(st, want, "{value}: {v}");
    }
    let auth = [("Authorization", "bearer sekret")];
    let (st, v) = srv.post(
        "/v1/completions",
        &json!({"prompt": "x", "temperature": 9}),
        &auth,
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["param"], "temperature");
}

/// The last bytes of `s` (for failure messages), on a character boundary.
fn tail(s: &str) -> &str {
    let mut i = s.len().saturating_sub(300);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// Reads one SSE response to its end, `pause` between reads of `chunk` bytes; the body.
fn read_slowly(s: &mut TcpStream, chunk: usize, pause: Duration) -> String {
    read_response_slowly(s, chunk, pause).1
}

/// Reads one response to its end, `pause` between reads of `chunk` bytes; status and body.
fn read_response_slowly(s: &mut TcpStream, chunk: usize, pause: Duration) -> (u16, String) {
    let mut out = Vec::new();
    let mut buf = vec![0; chunk];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        std::thread::sleep(pause);
    }
    parse_response(&out)
}

/// Sends a streaming request on a connection with a small receive buffer (a slow reader's
/// socket holds little, so undelivered data stays on the server's side).
fn open_stream(srv: &Client, path: &str, body: &Value) -> TcpStream {
    let addr: std::net::SocketAddr = srv.addr.parse().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s
}

#[test]
fn shutdown_delivers_everything_generated_to_a_slow_reader() {
    let mut srv = start(&["--shutdown-timeout", "20"]);
    let n = 240;
    let mut s = open_stream(
        &srv,
        "/v1/completions",
        &json!({"prompt": "tell", "max_tokens": n, "stream": true, "seed": 3}),
    );
    // The generation (~50 ms) ends in the server's buffers; then the server is asked to stop
    // while the client has read nothing.
    std::thread::sleep(Duration::from_millis(500));
    srv.sigterm();
    std::thread::sleep(Duration::from_millis(500));
    let body = read_slowly(&mut s, 1024, Duration::from_millis(2));
    let tail = tail(&body);
    assert!(body.ends_with("data: [DONE]\n\n"), "stream cut: ...{tail}");
    assert_eq!(body.matches("\"token_ids\":[").count(), n + 1, "...{tail}");
    assert!(body.contains("\"finish_detail\":\"length\""), "...{tail}");
    assert!(srv.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn shutdown_timeout_cuts_streams_with_an_error_event() {
    // One decode slot and 60 streams of ~250 tokens each (~50 ms apiece): many are still
    // queued, already answered 200, when the 1 s grace ends.
    let mut srv = start(&[
        "--shutdown-timeout",
        "1",
        "--max-batch",
        "1",
        "--kv-pool-sessions",
        "1",
        "--max-queue",
        "100",
    ]);
    let readers: Vec<_> = (0..60)
        .map(|i| {
            let mut s = open_stream(
                &srv,
                "/v1/chat/completions",
                &json!({"messages": [{"role": "user", "content": format!("go {i}")}], "stream": true}),
            );
            std::thread::spawn(move || read_response_slowly(&mut s, 1 << 16, Duration::ZERO))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    srv.sigterm();
    let mut cut = 0;
    for r in readers {
        let (status, body) = r.join().unwrap();
        if status == 503 {
            // Arrived after the signal (a loaded machine): refused, not cut.
            assert!(body.contains("shutting down"), "{body}");
            continue;
        }
        let tail = tail(&body);
        assert_eq!(status, 200, "{tail}");
        assert!(body.ends_with("data: [DONE]\n\n"), "...{tail}");
        if body.contains("shut down") {
            assert!(body.contains("\"error\""), "{tail}");
            assert!(!body.contains("\"finish_reason\":\"length\""), "{tail}");
            cut += 1;
        }
    }
    assert!(cut > 0, "no stream was cut");
    assert!(srv.wait_exit(Duration::from_secs(10)).success());
}
