//! Start-up tuning (`tuning` feature): the choice is measured on the model's shapes, cached,
//! used by the model, and reported in `/metrics` (and receipts, with `receipts`).
#![cfg(feature = "tuning")]

mod common;

use common::*;
use serde_json::Value;
#[cfg(feature = "receipts")]
use serde_json::json;

#[actix_web::test]
async fn tuned_choice_is_used_cached_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tuning.json");
    let mut cfg = config();
    cfg.tune = true;
    cfg.threads = 2;
    cfg.tuning_cache = Some(cache.clone());
    #[cfg(feature = "receipts")]
    {
        cfg.receipts_log = Some(dir.path().join("r.jsonl"));
    }
    let s = TestServer::start(cfg.clone());
    let engine = s.state.loaded().unwrap().engine.clone();
    assert!(engine.kernel.tuned);
    let tuning = engine.kernel.tuning.clone().unwrap();
    assert!(!tuning.cached);
    assert_eq!(tuning.kernel, engine.kernel.id);
    assert_eq!(tuning.threads, engine.kernel.threads);
    // The model runs what was chosen.
    assert_eq!(engine.model.kernels().backend().id(), engine.kernel.id);
    assert_eq!(engine.model.kernels().threads(), engine.kernel.threads);
    let candidates = &tuning.candidates;
    assert_eq!(
        candidates.len(),
        bitnet_engine::backend::available().len() * 2
    );
    assert_eq!(candidates[0].kernel, tuning.kernel);

    let m = get(&s.url("/metrics")).await.1;
    let info = format!(
        "bitnet_kernel_info{{id=\"{}\",threads=\"{}\",tuned=\"true\"}} 1",
        engine.kernel.id, engine.kernel.threads
    );
    assert!(m.contains(&info), "missing {info} in\n{m}");

    #[cfg(feature = "receipts")]
    {
        let (_, v) = post(
            &s.url("/v1/completions"),
            &json!({"prompt": "t", "max_tokens": 2}),
        )
        .await;
        let id = v["id"].as_str().unwrap();
        let (_, r) = get(&s.url(&format!("/v1/receipts/{id}"))).await;
        let r: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(r["kernels"]["tuned"], true);
        assert_eq!(r["kernels"]["tuning"]["kernel"], tuning.kernel.as_str());
    }
    s.stop().await;

    // The second start reads the cache for this CPU and model.
    let table: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(table.as_object().unwrap().len(), 1);
    let again = bitnet_server::Engine::load(&cfg).unwrap();
    let t2 = again.kernel.tuning.unwrap();
    assert!(t2.cached);
    assert_eq!((&t2.kernel, t2.threads), (&tuning.kernel, tuning.threads));
}
