//! [`FakeHub`]: the Hugging Face Hub's download routes served from memory on 127.0.0.1, so
//! that the download code is tested over real HTTP without the network (point `HF_ENDPOINT`
//! at [`FakeHub::endpoint`]).
//!
//! Served as the real Hub serves them:
//! - `GET /api/models/{org}/{repo}/revision/{rev}`: `{"id", "sha", "siblings": [{"rfilename",
//!   "size", "lfs": {"sha256", "size"}}]}`; an unknown repository is 404 with
//!   `X-Error-Code: RepoNotFound`;
//! - `GET|HEAD /{org}/{repo}/resolve/{rev}/{file}`: an LFS file (weights) answers `302` to
//!   the CDN (`/cdn/{sha256}`) with `X-Repo-Commit`, `X-Linked-Etag` (the quoted sha256),
//!   `X-Linked-Size` and `ETag` (the CDN listens on another port: another origin, as the
//!   real CDN is another host); a small git file answers 200 with its body, `ETag` (a git
//!   object id) and `X-Repo-Commit`; a missing file is 404 with `X-Error-Code: EntryNotFound`;
//! - `GET|HEAD /cdn/{sha256}`: the bytes, with `Range: bytes=A-[B]` answered 206 and
//!   `Content-Range`.
//!
//! Every request is recorded ([`FakeHub::requests`]); [`FakeHub::drop_next_body`] makes the
//! next full body stop half-way (headers promise all of it, then the connection closes) and
//! [`FakeHub::set_corrupt`] flips a byte of every CDN body while the headers keep the true
//! sha256.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

/// A file of a [`FakeRepo`].
#[derive(Debug, Clone)]
pub struct FakeFile {
    /// Path in the repository.
    pub name: String,
    /// Content.
    pub bytes: Vec<u8>,
    /// Stored in LFS (has a sha256 in the listing, is served through the CDN redirect).
    pub lfs: bool,
    /// Hex sha256 of `bytes`, computed once (test builds hash slowly).
    sha256: String,
}

impl FakeFile {
    /// A large file, stored in LFS.
    pub fn lfs(name: &str, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            sha256: hex(&Sha256::digest(&bytes)),
            bytes,
            lfs: true,
        }
    }

    /// A small file kept in git.
    pub fn git(name: &str, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            sha256: hex(&Sha256::digest(&bytes)),
            bytes,
            lfs: false,
        }
    }

    /// Lower-case hex sha256 of the content.
    pub fn sha256(&self) -> String {
        self.sha256.clone()
    }
}

/// A model repository on the stand-in Hub.
#[derive(Debug, Clone)]
pub struct FakeRepo {
    /// `org/name`.
    pub id: String,
    /// The commit `main` points at (40 hex digits).
    pub commit: String,
    /// Its files.
    pub files: Vec<FakeFile>,
}

impl FakeRepo {
    /// A repository whose commit id is derived from its name.
    pub fn new(id: &str, files: Vec<FakeFile>) -> Self {
        Self {
            id: id.into(),
            commit: hex(&Sha256::digest(id.as_bytes()))[..40].to_string(),
            files,
        }
    }
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET` or `HEAD`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    repos: Vec<FakeRepo>,
    log: Vec<Recorded>,
    drop_next_body: bool,
    corrupt: bool,
}

/// The stand-in Hub, serving until the test process ends.
#[derive(Clone)]
pub struct FakeHub {
    addr: SocketAddr,
    /// The CDN's address: another origin (port), as the real Hub's CDN is another host, so
    /// that clients treat the redirect as leaving the Hub (Python's huggingface_hub reads the
    /// file's metadata from the redirect itself then, and no client forwards the token).
    cdn: SocketAddr,
    state: Arc<Mutex<State>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FakeHub {
    /// Starts serving `repos` on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port can be bound.
    pub fn start(repos: Vec<FakeRepo>) -> Self {
        let bind = || TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let (listener, cdn_listener) = (bind(), bind());
        let hub = Self {
            addr: listener.local_addr().expect("local address"),
            cdn: cdn_listener.local_addr().expect("local address"),
            state: Arc::new(Mutex::new(State {
                repos,
                ..State::default()
            })),
        };
        for l in [listener, cdn_listener] {
            let server = hub.clone();
            std::thread::spawn(move || {
                for stream in l.incoming().flatten() {
                    let server = server.clone();
                    std::thread::spawn(move || {
                        let _ = server.serve(stream);
                    });
                }
            });
        }
        hub
    }

    /// The base URL, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().log.clone()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.state().log.clear();
    }

    /// The next body longer than one byte is cut off half-way (once).
    pub fn drop_next_body(&self) {
        self.state().drop_next_body = true;
    }

    /// Serve CDN bodies with one byte flipped (the announced sha256 stays the true one).
    pub fn set_corrupt(&self, on: bool) {
        self.state().corrupt = on;
    }

    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let (mut range, mut authorization) = (None, None);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let v = v.trim().to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(v),
                    "authorization" => authorization = Some(v),
                    _ => {}
                }
            }
        }
        self.state().log.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            range: range.clone(),
            authorization,
        });
        let reply = self.route(&path, range.as_deref());
        write_reply(stream, &method, reply)
    }

    fn route(&self, path: &str, range: Option<&str>) -> Reply {
        let path = path.split('?').next().unwrap_or_default();
        let mut state = self.state();
        if let Some(rest) = path.strip_prefix("/api/models/") {
            // {org}/{name}/revision/{rev}
            let segs: Vec<&str> = rest.split('/').collect();
            let id = segs.iter().take(2).copied().collect::<Vec<_>>().join("/");
            let Some(repo) = state.repos.iter().find(|r| r.id == id) else {
                return Reply::error(404, "RepoNotFound", "Repository not found");
            };
            let siblings: Vec<serde_json::Value> = repo
                .files
                .iter()
                .map(|f| {
                    let mut v = serde_json::json!({
                        "rfilename": f.name,
                        "size": f.bytes.len(),
                    });
                    if f.lfs {
                        v["lfs"] = serde_json::json!({
                            "sha256": f.sha256(),
                            "size": f.bytes.len(),
                            "pointerSize": 134,
                        });
                    }
                    v
                })
                .collect();
            let body = serde_json::json!({
                "id": repo.id,
                "modelId": repo.id,
                "sha": repo.commit,
                "private": false,
                "siblings": siblings,
            });
            return Reply::json(200, body.to_string().into_bytes());
        }
        if let Some(sha) = path.strip_prefix("/cdn/") {
            let file = state
                .repos
                .iter()
                .flat_map(|r| &r.files)
                .find(|f| f.lfs && f.sha256 == sha)
                .cloned();
            let Some(file) = file else {
                return Reply::error(404, "EntryNotFound", "no such object");
            };
            let mut bytes = file.bytes;
            if state.corrupt && !bytes.is_empty() {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
            }
            return body_reply(&mut state, bytes, range, Vec::new());
        }
        // /{org}/{name}/resolve/{rev}/{file...}
        let segs: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
        if segs.len() == 5 && segs[2] == "resolve" {
            let id = format!("{}/{}", segs[0], segs[1]);
            let Some(repo) = state.repos.iter().find(|r| r.id == id).cloned() else {
                return Reply::error(404, "RepoNotFound", "Repository not found");
            };
            let Some(file) = repo.files.iter().find(|f| f.name == segs[4]).cloned() else {
                return Reply::error(404, "EntryNotFound", "Entry not found");
            };
            let commit = ("X-Repo-Commit".to_string(), repo.commit.clone());
            if file.lfs {
                let sha = file.sha256();
                return Reply {
                    status: 302,
                    headers: vec![
                        commit,
                        ("X-Linked-Etag".into(), format!("\"{sha}\"")),
                        ("X-Linked-Size".into(), file.bytes.len().to_string()),
                        ("ETag".into(), format!("\"{sha}\"")),
                        ("Location".into(), format!("http://{}/cdn/{sha}", self.cdn)),
                    ],
                    body: Vec::new(),
                };
            }
            let etag = ("ETag".to_string(), format!("\"{}\"", &file.sha256()[..40]));
            return body_reply(&mut state, file.bytes, range, vec![commit, etag]);
        }
        Reply::error(404, "EntryNotFound", "no such route")
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        let mut r = Self::json(
            status,
            serde_json::json!({ "error": message })
                .to_string()
                .into_bytes(),
        );
        r.headers.push(("X-Error-Code".into(), code.into()));
        r
    }
}

/// The body (or the requested range of it), cut half-way if a drop is armed.
fn body_reply(
    state: &mut State,
    bytes: Vec<u8>,
    range: Option<&str>,
    mut headers: Vec<(String, String)>,
) -> Reply {
    let total = bytes.len();
    let (status, start, end) = match range.and_then(parse_range) {
        Some((start, _)) if start >= total => {
            headers.push(("Content-Range".into(), format!("bytes */{total}")));
            return Reply {
                status: 416,
                headers,
                body: Vec::new(),
            };
        }
        Some((start, end)) => {
            let end = end.map_or(total - 1, |e| e.min(total - 1));
            headers.push((
                "Content-Range".into(),
                format!("bytes {start}-{end}/{total}"),
            ));
            (206, start, end + 1)
        }
        None => (200, 0, total),
    };
    let body = bytes[start..end].to_vec();
    if state.drop_next_body && body.len() > 1 {
        state.drop_next_body = false;
        headers.push(("X-Fake-Drop".into(), (body.len() / 2).to_string()));
    }
    headers.push(("Accept-Ranges".into(), "bytes".into()));
    Reply {
        status,
        headers,
        body,
    }
}

/// `bytes=A-` or `bytes=A-B`.
fn parse_range(v: &str) -> Option<(usize, Option<usize>)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse().ok()?)
    };
    Some((a, b))
}

fn write_reply(mut stream: TcpStream, method: &str, reply: Reply) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Status",
    };
    let mut cut = None;
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    for (k, v) in &reply.headers {
        if k == "X-Fake-Drop" {
            cut = v.parse::<usize>().ok();
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        let body = match cut {
            Some(n) => &reply.body[..n],
            None => &reply.body[..],
        };
        stream.write_all(body)?;
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}
