//! Receipts end to end inside the crate: a generation's receipt survives JSON, verifies by
//! rerunning, and every kind of tampering fails naming what differs; old and foreign records
//! are refused with clear messages.

use std::path::PathBuf;

use bitnet_engine::{
    FinishReason, Generation, GenerationParams, LoadOptions, Model, ModelRef, SamplingParams,
    SessionOptions,
};
use bitnet_receipt::{
    Mismatch, ModelIdentity, Output, Prompt, Receipt, Run, SCHEMA_VERSION, SchemaError, Timings,
    Tool, VerifyError, VerifyOptions,
};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-bitnet/i2s/model-i2_s.gguf")
}

/// Generates from `model_ref` as a front end would and returns the receipt.
fn receipt_of(model_ref: ModelRef, sampling: SamplingParams, max_tokens: usize) -> Receipt {
    let load = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let model = Model::open(&model_ref, &load).unwrap();
    let identity = ModelIdentity::of(&model_ref).unwrap();
    let session_opts = SessionOptions {
        context: Some(64),
        ..SessionOptions::default()
    };
    let mut session = model.session(&session_opts);
    let params = GenerationParams {
        max_tokens,
        sampling,
        ..GenerationParams::default()
    };
    let prompt = vec![1u32, 10, 20, 30];
    let generation = Generation::new(
        &model,
        &mut session,
        &prompt,
        params.clone(),
        model.tokenizer(),
    )
    .unwrap();
    let (text, ids, finish, stats) = generation.collect_text().unwrap();
    let dispatched = model.kernels().dispatch_counts();
    Receipt::new(Run {
        model: &model,
        name: model_ref.name(),
        identity,
        session: &session_opts,
        ctx: session.capacity(),
        params: &params,
        kernel: None,
        dispatched: &dispatched,
        prompt: Prompt {
            text: None,
            chat: false,
            ids: prompt,
        },
        output: Output::new(ids, model.tokenizer().map(|_| text), finish),
        timings: Timings::from_stats(&stats, None),
        tool: Tool {
            name: "receipt-test".into(),
            version: "0".into(),
        },
    })
}

fn sampled(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        seed,
        ..SamplingParams::default()
    }
}

fn verify(r: &Receipt) -> Result<bitnet_receipt::Verified, VerifyError> {
    r.verify(&VerifyOptions {
        threads: 1,
        model: None,
    })
}

fn mismatch(r: &Receipt) -> Mismatch {
    match verify(r) {
        Err(VerifyError::Mismatch(m)) => m,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn a_gguf_receipt_round_trips_and_verifies() {
    let r = receipt_of(ModelRef::Path(fixture()), SamplingParams::greedy(), 6);
    assert_eq!(r.schema_version, SCHEMA_VERSION);
    assert_eq!(r.model.source, "gguf");
    assert_eq!(
        r.model.identity.bytes,
        Some(std::fs::metadata(fixture()).unwrap().len())
    );
    assert_eq!(r.shapes.layers, 4);
    assert_eq!(r.settings.ctx, 64);
    assert_eq!(r.output.ids.len(), 6);
    assert_eq!(r.output.finish_reason, "length");
    assert!(r.kernels.dispatched.iter().all(|d| d.calls > 0));
    assert!(!r.kernels.dispatched.is_empty());
    let json = r.to_json_pretty().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 2);
    assert_eq!(
        v["model"]["ref"],
        std::fs::canonicalize(fixture()).unwrap().to_str().unwrap()
    );
    assert!(v.get("server").is_none(), "no server section: {v}");
    assert!(v["timings"].get("queue_ms").is_none());
    let back = Receipt::parse(&json).unwrap();
    assert_eq!(back, r);
    assert_eq!(verify(&back).unwrap().tokens, 6);
}

#[test]
fn a_seeded_synthetic_receipt_verifies_and_tampering_is_named() {
    let r = receipt_of(ModelRef::synthetic("tiny", 3).unwrap(), sampled(11), 8);
    assert_eq!(r.model.identity.sha256, None);
    assert_eq!(r.model.source, "synthetic");
    assert_eq!(verify(&r).unwrap().tokens, 8);

    // Another seed samples other tokens.
    let mut t = r.clone();
    t.settings.seed = 12;
    assert!(matches!(mismatch(&t), Mismatch::OutputToken { .. }));

    // A tampered output id is named with its position and both values.
    let mut t = r.clone();
    let old = t.output.ids[3];
    t.output.ids[3] = old ^ 1;
    assert_eq!(
        mismatch(&t),
        Mismatch::OutputToken {
            index: 3,
            receipt: old ^ 1,
            rerun: old
        }
    );

    // A shorter limit ends earlier.
    let mut t = r.clone();
    t.settings.max_tokens = 5;
    assert_eq!(
        mismatch(&t),
        Mismatch::OutputLength {
            receipt: 8,
            rerun: 5
        }
    );

    let mut t = r.clone();
    t.output.finish_reason = "stop_token".into();
    assert_eq!(
        mismatch(&t),
        Mismatch::FinishReason {
            receipt: "stop_token".into(),
            rerun: "length"
        }
    );

    // Checking another model against a synthetic receipt names both.
    let err = r
        .verify(&VerifyOptions {
            threads: 1,
            model: Some(ModelRef::Path(fixture())),
        })
        .unwrap_err();
    let VerifyError::Mismatch(Mismatch::Model { receipt, .. }) = err else {
        panic!("{err:?}");
    };
    assert_eq!(receipt, "synthetic:tiny:3");
}

#[test]
fn a_tampered_hash_or_size_is_named() {
    let r = receipt_of(ModelRef::Embedded, SamplingParams::greedy(), 3);
    assert_eq!(r.model.identity.model, ModelRef::Embedded);
    let mut t = r.clone();
    t.model.identity.sha256 = Some("0".repeat(64));
    let m = mismatch(&t);
    assert!(
        m.to_string().starts_with(&format!(
            "model sha256 differs: receipt has {}, <embedded:",
            "0".repeat(64)
        )),
        "{m}"
    );
    let mut t = r.clone();
    t.model.identity.bytes = Some(1);
    assert!(matches!(
        mismatch(&t),
        Mismatch::ModelSize { receipt: 1, .. }
    ));
}

#[test]
fn fields_no_run_could_record_are_named_without_panicking() {
    let r = receipt_of(
        ModelRef::synthetic("tiny", 1).unwrap(),
        SamplingParams::greedy(),
        4,
    );
    let field = |t: &Receipt| match verify(t) {
        Err(VerifyError::BadField { field, .. }) => field,
        other => panic!("expected a bad field, got {other:?}"),
    };
    let mut t = r.clone();
    t.settings.kv_type = "f99".into();
    assert_eq!(field(&t), "settings.kv_type");
    let mut t = r.clone();
    t.settings.head_type = "q2".into();
    assert_eq!(field(&t), "settings.head_type");
    let mut t = r.clone();
    t.settings.ctx = usize::MAX;
    assert_eq!(field(&t), "settings.ctx");
    let mut t = r.clone();
    t.prompt.ids.clear();
    assert_eq!(field(&t), "prompt.ids");
    // A prompt id outside the vocabulary is the engine's error, named.
    let mut t = r.clone();
    t.prompt.ids[0] = u32::MAX;
    let err = verify(&t).unwrap_err();
    assert!(matches!(err, VerifyError::Engine(_)), "{err:?}");
    // An unbounded limit runs to the end of the context instead of allocating it.
    let mut t = r.clone();
    t.settings.max_tokens = usize::MAX;
    assert!(matches!(
        mismatch(&t),
        Mismatch::OutputLength { receipt: 4, .. }
    ));
}

#[test]
fn old_foreign_and_broken_records_are_refused_clearly() {
    let r = receipt_of(
        ModelRef::synthetic("tiny", 1).unwrap(),
        SamplingParams::greedy(),
        2,
    );
    let mut v = serde_json::to_value(&r).unwrap();
    let msg = |v: &serde_json::Value| Receipt::parse(&v.to_string()).unwrap_err().to_string();

    v["schema_version"] = 1.into();
    assert_eq!(
        msg(&v),
        "schema_version 1 is no longer read; rerun to get a v2 receipt"
    );
    v["schema_version"] = 3.into();
    assert_eq!(
        msg(&v),
        "schema_version 3 is not supported (this tool reads 2)"
    );
    v["schema_version"] = 2.into();
    // Unconstrained output: no constraint written; an unknown kind is refused naming it.
    assert!(v["settings"].get("constraint").is_none(), "{v}");
    v["settings"]["constraint"] = serde_json::json!({"kind": "regex"});
    assert!(msg(&v).contains("unknown variant `regex`"), "{}", msg(&v));
    // A constraint on a model without a tokenizer (no token texts to match) is named.
    v["settings"]["constraint"] = serde_json::json!({"kind": "json_object"});
    let constrained = Receipt::parse(&v.to_string()).unwrap();
    assert_eq!(
        constrained.settings.constraint,
        Some(bitnet_receipt::Constraint::json_object())
    );
    match verify(&constrained) {
        Err(VerifyError::BadField { field, .. }) => assert_eq!(field, "settings.constraint"),
        other => panic!("expected a bad settings.constraint, got {other:?}"),
    }
    v["settings"].as_object_mut().unwrap().remove("constraint");
    v["settings"].as_object_mut().unwrap().remove("seed");
    assert!(msg(&v).contains("missing field `seed`"), "{}", msg(&v));
    let ev = serde_json::json!({"schema_version": 2, "kind": "kv_eviction", "id": "evict-1"});
    assert_eq!(
        msg(&ev),
        "a 'kv_eviction' record is not a generation receipt"
    );
    assert!(matches!(
        Receipt::parse("{\"hello\": 1}"),
        Err(SchemaError::MissingVersion)
    ));
    assert!(Receipt::parse("[]").is_err());
    assert!(
        Receipt::parse("not json")
            .unwrap_err()
            .to_string()
            .starts_with("invalid JSON: ")
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json");
    let err = Receipt::read(&missing).unwrap_err();
    assert_eq!(err.to_string(), missing.display().to_string());
    let file = dir.path().join("v1.json");
    std::fs::write(&file, "{\"schema_version\": 1}").unwrap();
    let err = Receipt::read(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: not a valid receipt", file.display())
    );
    assert!(matches!(
        std::error::Error::source(&err).and_then(|s| s.downcast_ref::<SchemaError>()),
        Some(SchemaError::Version1)
    ));
    // Finish reasons are written through one function.
    assert_eq!(FinishReason::ContextFull.as_str(), "context_full");
}
