//! Helpers for end-to-end tests that drive the workspace's real binaries together (a
//! `bitnet-server` process and `bitnet-cli` commands), which no single package's tests can:
//! cargo gives an integration test only its own package's binaries.
//!
//! Design decisions:
//! - **The binaries are found next to the test executable** (`target/<profile>/`, the test
//!   itself being in `target/<profile>/deps/`), i.e. the ones the same `cargo test
//!   --workspace` / `cargo nextest run --workspace` built. `BITNET_E2E_BIN_DIR` overrides the
//!   directory. A missing binary fails the test with the command that builds it.
//! - **The server picks its own port** (`--port 0`) and reports it on its first stdout line,
//!   so parallel tests never race for a port; [`free_port`] exists for tests that must know a
//!   port before starting something.
//! - **HTTP is a few lines over `std::net`** (HTTP/1.1, `Connection: close`, sized or chunked
//!   bodies): enough for JSON requests and responses, no async runtime or client library.
//! - Helpers panic with a message naming what failed (like `assert_cmd`): they are test
//!   code, and a panic is how a test reports.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use bitnet_test_support::fixtures::{fixture, workspace_root};

/// The tiny I2_S GGUF fixture (4 layers, vocabulary 512, a placeholder tokenizer).
pub fn tiny_gguf() -> PathBuf {
    fixture("tiny-bitnet/i2s/model-i2_s.gguf")
}

/// The directory holding the workspace's built binaries.
///
/// # Panics
/// If the test executable's path cannot be read.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BITNET_E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut dir = exe
        .parent()
        .expect("the test executable's directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of workspace binary `name` (e.g. `bitnet-server`).
///
/// # Panics
/// If it was not built, saying how to build it.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --all-targets` first (or run the tests \
         with `cargo test --workspace` / `cargo nextest run --workspace`, which build it \
         with the features these tests need)",
        path.display()
    );
    path
}

/// Runs workspace binary `name` with `args` to completion.
///
/// # Panics
/// If the binary is missing or cannot be started.
pub fn run<I, S>(name: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let bin = binary(name);
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// A port that was free a moment ago on 127.0.0.1 (another process may take it before it is
/// used; prefer `--port 0` where the program reports its port).
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (chunked encoding removed).
    pub body: String,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {:?}", self.body))
    }
}

/// Splits `http://HOST:PORT/path` into (`HOST:PORT`, `/path`).
fn split_url(url: &str) -> (&str, &str) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs are supported: {url}"));
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    }
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return out;
        };
        raw = &raw[eol + 2..];
        if size == 0 || raw.len() < size {
            out.extend_from_slice(&raw[..size.min(raw.len())]);
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or(&[]);
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole response.
///
/// # Panics
/// If the server cannot be reached or answers something that is not HTTP.
pub fn request(method: &str, url: &str, json_body: Option<&Value>) -> Response {
    let (host, path) = split_url(url);
    let mut stream =
        TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {host}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("setting a read timeout");
    let body = json_body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if json_body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .unwrap_or_else(|e| panic!("sending {method} {url}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading the response to {method} {url}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header in the response to {method} {url}"));
    let header = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = header
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in the response to {method} {url}: {header}"));
    let chunked = header.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let payload = &raw[split + 4..];
    let body = if chunked {
        dechunk(payload)
    } else {
        payload.to_vec()
    };
    Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET url`.
pub fn get(url: &str) -> Response {
    request("GET", url, None)
}

/// `POST url` with a JSON body.
pub fn post_json(url: &str, body: &Value) -> Response {
    request("POST", url, Some(body))
}

/// A running `bitnet-server` process on 127.0.0.1, killed when dropped.
pub struct Server {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server binary with `args` (plus `--host 127.0.0.1 --port 0`) and waits until
    /// `/ready` answers 200 (the model is loaded).
    ///
    /// # Panics
    /// If the binary is missing, exits early or is not ready within 120 s; the message
    /// includes its stderr.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Self {
        let bin = binary("bitnet-server");
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let mut out = BufReader::new(out);
            let _ = out.read_line(&mut line);
            // Keep draining so the server never writes into a closed pipe.
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        }
        let mut server = Self {
            child,
            base: String::new(),
            stderr,
        };
        match line.trim().strip_prefix("bitnet-server listening on ") {
            Some(url) => server.base = url.to_string(),
            None => {
                // EOF on stdout: it is exiting; anything else: stop it.
                if !line.is_empty() {
                    let _ = server.child.kill();
                }
                let status = server.child.wait().ok();
                // Give the stderr reader a moment to drain the pipe of an exited process.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "bitnet-server did not start (exit {status:?}; first stdout line {line:?}); \
                     stderr:\n{}\n(a flag that needs a feature means the binary was built \
                     without it: run `cargo build --workspace --all-targets`)",
                    server.stderr()
                );
            }
        }
        server.wait_ready(Duration::from_secs(120));
        server
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "bitnet-server exited ({status}) before it was ready; stderr:\n{}",
                    self.stderr()
                );
            }
            if get(&self.url("/ready")).status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bitnet-server not ready after {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `path` (starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        get(&self.url(path))
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        post_json(&self.url(path), body)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the server gracefully (SIGTERM on Unix, so running requests finish) and returns
    /// its exit status.
    ///
    /// # Panics
    /// If it cannot be signalled or waited for.
    pub fn stop(mut self) -> ExitStatus {
        #[cfg(unix)]
        {
            let sent = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .expect("running kill");
            assert!(sent.success(), "kill -TERM {} failed", self.child.id());
        }
        #[cfg(not(unix))]
        {
            let _ = self.child.kill();
        }
        self.child.wait().expect("waiting for bitnet-server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/v1/receipts/x"),
            ("127.0.0.1:8080", "/v1/receipts/x")
        );
        assert_eq!(split_url("http://localhost:1"), ("localhost:1", "/"));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b""), b"");
    }

    #[test]
    fn binaries_are_looked_up_next_to_the_test_executable() {
        let dir = bin_dir();
        assert!(!dir.ends_with("deps"), "{}", dir.display());
        assert!(dir.is_dir(), "{}", dir.display());
    }
}
