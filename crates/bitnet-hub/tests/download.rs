//! `Hub::fetch` against the stand-in Hub on 127.0.0.1 (`bitnet_test_support::hub`): the
//! cache layout Python's huggingface_hub uses, a second fetch served from the cache, resuming
//! after a dropped connection (in the same run and from a partial file left by an earlier
//! one), a corrupted body refused and removed, the token sent, offline mode, and the errors
//! for a missing repository and an ambiguous choice of GGUF.

use std::path::Path;

use bitnet_hub::{Hub, HubError, HubRef, Settings};
use bitnet_test_support::fixtures::tiny;
use bitnet_test_support::hub::{FakeFile, FakeHub, FakeRepo};

fn embedded() -> Vec<u8> {
    bitnet_default_model::gguf_bytes().to_vec()
}

fn hub_with_repos() -> FakeHub {
    FakeHub::start(vec![
        FakeRepo::new(
            "org/model-gguf",
            vec![
                FakeFile::git("README.md", b"# a model\n".to_vec()),
                FakeFile::lfs("model-i2_s.gguf", embedded()),
            ],
        ),
        FakeRepo::new(
            "org/two-ggufs",
            vec![
                FakeFile::lfs("model-f16.gguf", b"GGUF one".to_vec()),
                FakeFile::lfs("model-tq2_0.gguf", b"GGUF two".to_vec()),
            ],
        ),
        FakeRepo::new(
            "org/tiny-safetensors",
            vec![
                FakeFile::git(
                    "config.json",
                    std::fs::read(tiny("packed/config.json")).unwrap(),
                ),
                FakeFile::lfs(
                    "model.safetensors",
                    std::fs::read(tiny("packed/model.safetensors")).unwrap(),
                ),
            ],
        ),
    ])
}

fn client(hub: &FakeHub, cache: &Path) -> Hub {
    Hub::new(Settings {
        endpoint: hub.endpoint(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline: false,
    })
}

fn r(spec: &str) -> HubRef {
    HubRef::parse(spec).unwrap()
}

fn cdn_gets(hub: &FakeHub) -> Vec<Option<String>> {
    hub.requests()
        .into_iter()
        .filter(|q| q.method == "GET" && q.path.starts_with("/cdn/"))
        .map(|q| q.range)
        .collect()
}

#[test]
fn gguf_repo_lands_in_the_hf_cache_layout_and_is_reused() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let got = c.fetch(&r("org/model-gguf")).unwrap();
    let repo = FakeRepo::new("org/model-gguf", vec![]);
    let sha = FakeFile::lfs("x", embedded()).sha256();
    let dir = cache.path().join("models--org--model-gguf");
    assert_eq!(got.commit, repo.commit);
    assert_eq!(got.downloaded, vec!["model-i2_s.gguf".to_string()]);
    assert_eq!(
        got.path,
        dir.join("snapshots")
            .join(&repo.commit)
            .join("model-i2_s.gguf")
    );
    // The layout huggingface_hub writes and reads: a relative link to the blob named by sha256.
    assert_eq!(
        std::fs::read_link(&got.path).unwrap(),
        Path::new("../../blobs").join(&sha)
    );
    assert_eq!(
        std::fs::read(dir.join("blobs").join(&sha)).unwrap(),
        embedded()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("refs/main")).unwrap(),
        repo.commit
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), embedded());

    hub.clear_requests();
    let again = c.fetch(&r("org/model-gguf")).unwrap();
    assert_eq!(again.path, got.path);
    assert!(again.downloaded.is_empty());
    let paths: Vec<String> = hub.requests().into_iter().map(|q| q.path).collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/api/models/org/model-gguf")),
        "only the listing is asked for: {paths:?}"
    );
}

#[test]
fn dropped_connection_resumes_with_a_range_request() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    hub.drop_next_body();
    let got = client(&hub, cache.path())
        .fetch(&r("org/model-gguf"))
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), embedded());
    let gets = cdn_gets(&hub);
    let half = embedded().len() / 2;
    // The size probe (bytes=0-0), the download cut at half, then the rest from there.
    assert_eq!(
        gets,
        vec![
            Some("bytes=0-0".to_string()),
            Some("bytes=0-".to_string()),
            Some(format!("bytes={half}-")),
        ]
    );
}

#[test]
fn partial_download_of_an_earlier_run_is_continued() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let sha = FakeFile::lfs("x", embedded()).sha256();
    let blobs = cache.path().join("models--org--model-gguf/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    // As Python's huggingface_hub leaves an interrupted download.
    let third = embedded().len() / 3;
    std::fs::write(
        blobs.join(format!("{sha}.incomplete")),
        &embedded()[..third],
    )
    .unwrap();
    let got = client(&hub, cache.path())
        .fetch(&r("org/model-gguf"))
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), embedded());
    assert_eq!(
        cdn_gets(&hub).last().unwrap(),
        &Some(format!("bytes={third}-"))
    );
    let left: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec![sha], "no partial or lock file is left");
}

#[test]
fn complete_partial_file_is_downloaded_again_not_stuck() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let sha = FakeFile::lfs("x", embedded()).sha256();
    let blobs = cache.path().join("models--org--model-gguf/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    // Every byte arrived but the run ended before the rename: a Range request from the end
    // would be refused (416) on every run.
    std::fs::write(blobs.join(format!("{sha}.part")), embedded()).unwrap();
    let got = client(&hub, cache.path())
        .fetch(&r("org/model-gguf"))
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), embedded());
    assert_eq!(
        cdn_gets(&hub).last().unwrap(),
        &Some("bytes=0-".to_string())
    );
}

#[test]
fn corrupted_body_is_refused_and_not_kept() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    hub.set_corrupt(true);
    let err = c.fetch(&r("org/model-gguf")).unwrap_err();
    let sha = FakeFile::lfs("x", embedded()).sha256();
    match &err {
        HubError::HashMismatch { expected, file, .. } => {
            assert_eq!(expected, &sha);
            assert_eq!(file, "model-i2_s.gguf");
        }
        other => panic!("expected a hash mismatch, got {other}"),
    }
    assert!(err.to_string().contains("removed from the cache"), "{err}");
    let dir = cache.path().join("models--org--model-gguf");
    assert!(!dir.join("blobs").join(&sha).exists());
    let commit = FakeRepo::new("org/model-gguf", vec![]).commit;
    assert!(
        !dir.join("snapshots")
            .join(commit)
            .join("model-i2_s.gguf")
            .exists()
    );
    // Offline, the refused file is not found either.
    let offline = c.clone().with_offline(true);
    assert!(matches!(
        offline.fetch(&r("org/model-gguf")),
        Err(HubError::NotCached { .. })
    ));
    hub.set_corrupt(false);
    let got = c.fetch(&r("org/model-gguf")).unwrap();
    assert_eq!(std::fs::read(got.path).unwrap(), embedded());
}

#[test]
fn token_is_sent_as_bearer_authorization() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let mut settings = client(&hub, cache.path()).settings().clone();
    settings.token = Some("hf_secret123".into());
    Hub::new(settings).fetch(&r("org/model-gguf")).unwrap();
    let reqs = hub.requests();
    assert!(reqs.len() >= 3);
    for q in reqs {
        assert_eq!(
            q.authorization.as_deref(),
            Some("Bearer hf_secret123"),
            "{}",
            q.path
        );
    }
}

#[test]
fn offline_uses_the_cache_or_says_it_is_not_there() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let online = client(&hub, cache.path());
    let offline = online.clone().with_offline(true);
    let err = offline.fetch(&r("org/model-gguf")).unwrap_err().to_string();
    assert!(
        err.contains("hf:org/model-gguf is not in the Hugging Face cache")
            && err.contains("bitnet-cli pull org/model-gguf"),
        "{err}"
    );
    let got = online.fetch(&r("org/model-gguf")).unwrap();
    hub.clear_requests();
    let cached = offline.fetch(&r("org/model-gguf")).unwrap();
    assert_eq!(cached.path, got.path);
    let explicit = offline.fetch(&r("org/model-gguf:model-i2_s.gguf")).unwrap();
    assert_eq!(explicit.path, got.path);
    assert!(hub.requests().is_empty(), "offline makes no request");
}

#[test]
fn unreachable_hub_falls_back_to_the_cache() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut settings = client(&hub, cache.path()).settings().clone();
    settings.endpoint = format!("http://{closed}");
    let down = Hub::new(settings);
    let err = down.fetch(&r("org/model-gguf")).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "cannot reach the Hugging Face Hub at http://{closed}/api/models/org/model-gguf"
        )),
        "{err}"
    );
    let got = client(&hub, cache.path())
        .fetch(&r("org/model-gguf"))
        .unwrap();
    assert!(got.unreachable.is_none());
    let cached = down.fetch(&r("org/model-gguf")).unwrap();
    assert_eq!(cached.path, got.path);
    assert!(cached.unreachable.is_some());
}

#[test]
fn missing_repo_and_ambiguous_ggufs_are_clear_errors() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let err = c.fetch(&r("org/no-such-model")).unwrap_err().to_string();
    assert!(
        err.contains("'org/no-such-model' not found") && err.contains("HTTP 404"),
        "{err}"
    );
    let err = c.fetch(&r("org/two-ggufs")).unwrap_err().to_string();
    assert!(
        err.contains("model-f16.gguf, model-tq2_0.gguf") && err.contains("org/two-ggufs:FILE"),
        "{err}"
    );
    let got = c.fetch(&r("org/two-ggufs:model-tq2_0.gguf")).unwrap();
    assert_eq!(std::fs::read(got.path).unwrap(), b"GGUF two");
    let err = c
        .fetch(&r("org/model-gguf:other.gguf"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no file 'other.gguf'"), "{err}");
}

#[test]
fn safetensors_repo_is_converted_once() {
    let hub = hub_with_repos();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let got = c.fetch(&r("org/tiny-safetensors")).unwrap();
    let commit = FakeRepo::new("org/tiny-safetensors", vec![]).commit;
    assert!(got.converted);
    assert_eq!(
        got.downloaded,
        vec!["config.json".to_string(), "model.safetensors".to_string()]
    );
    assert_eq!(
        got.path,
        cache
            .path()
            .join("models--org--tiny-safetensors/bitnet-rs")
            .join(&commit)
            .join("tiny-safetensors-i2_s.gguf")
    );
    let bytes = std::fs::read(&got.path).unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    let again = c.fetch(&r("org/tiny-safetensors")).unwrap();
    assert!(!again.converted && again.downloaded.is_empty());
    assert_eq!(again.path, got.path);
    let offline = c
        .with_offline(true)
        .fetch(&r("org/tiny-safetensors"))
        .unwrap();
    assert_eq!(offline.path, got.path);
}
