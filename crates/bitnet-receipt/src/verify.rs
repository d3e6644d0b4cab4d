//! Verification: load the receipt's model, check its identity, rerun the generation with the
//! recorded settings and compare the output token by token.
//!
//! A rerun is deterministic: greedy decoding is an argmax, sampling draws from a ChaCha8
//! stream seeded with the recorded seed, every SIMD kernel returns exactly the scalar
//! kernel's numbers, and a request's tokens do not depend on what a server batched it with.
//! So the output ids and finish reason must match exactly, on any CPU and thread count; only
//! the kernel ids may differ (reported as a note, not a failure).
//!
//! A constrained output (`settings.constraint`) is rerun under the grammar compiled from the
//! recorded schema and key order, so it draws from the same masked logits.
//!
//! Receipts are input like any other: a field no run could have recorded (an unknown KV
//! type, a context larger than the model's, an empty prompt) is an error naming the field,
//! never a panic, and a huge `max_tokens` cannot make the rerun allocate without bound.

use std::sync::Arc;

use bitnet_engine::{
    Generation, GenerationParams, LoadOptions, Model, ModelRef, SessionOptions, TokenConstraint,
};

use crate::error::{Mismatch, VerifyError};
use crate::identity::{ModelIdentity, model_ref_text};
use crate::schema::{Receipt, parse_kv_type};

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Kernel threads for the rerun (0 = all cores; the output does not depend on it).
    pub threads: usize,
    /// Check this model instead of the recorded one (it must still have the recorded hash):
    /// for a model that moved since the receipt was written.
    pub model: Option<ModelRef>,
}

/// A receipt that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Output tokens that matched.
    pub tokens: usize,
    /// Differences that do not affect the output (e.g. other kernels on this CPU).
    pub notes: Vec<String>,
}

fn bad(field: &'static str, reason: impl Into<String>) -> VerifyError {
    VerifyError::BadField {
        field,
        reason: reason.into(),
    }
}

fn ref_text(r: &ModelRef) -> String {
    model_ref_text::to_text(r).unwrap_or_else(|| r.to_string())
}

/// Checks that `actual` (the model about to be loaded) is the receipt's model.
fn check_identity(recorded: &ModelIdentity, actual: &ModelIdentity) -> Result<(), VerifyError> {
    let label = actual.model.to_string();
    match (&recorded.sha256, &actual.sha256) {
        (Some(want), Some(got)) => {
            if let (Some(want_bytes), Some(got_bytes)) = (recorded.bytes, actual.bytes)
                && want_bytes != got_bytes
            {
                return Err(Mismatch::ModelSize {
                    receipt: want_bytes,
                    model: label,
                    actual: got_bytes,
                }
                .into());
            }
            if want != got {
                return Err(Mismatch::ModelSha256 {
                    receipt: want.clone(),
                    model: label,
                    actual: got.clone(),
                }
                .into());
            }
            Ok(())
        }
        (None, None) if recorded.model == actual.model => Ok(()),
        (None, _) if !matches!(recorded.model, ModelRef::Synthetic { .. }) => Err(bad(
            "model.sha256",
            "missing: a receipt of a file or of the embedded model records its hash",
        )),
        _ => Err(Mismatch::Model {
            receipt: ref_text(&recorded.model),
            rerun: ref_text(&actual.model),
        }
        .into()),
    }
}

impl Receipt {
    /// Verifies the receipt (see the module doc). Reads and hashes the model, loads it and
    /// reruns the generation.
    pub fn verify(&self, opts: &VerifyOptions) -> Result<Verified, VerifyError> {
        let mut notes = Vec::new();
        let target = opts
            .model
            .clone()
            .unwrap_or_else(|| self.model.identity.model.clone());
        let actual = ModelIdentity::of(&target)?;
        check_identity(&self.model.identity, &actual)?;

        let s = &self.settings;
        let head_type = s
            .head_type
            .parse()
            .map_err(|e: String| bad("settings.head_type", e))?;
        let kv_type = parse_kv_type(&s.kv_type).map_err(|e| bad("settings.kv_type", e))?;
        let kernel = match &s.kernel {
            Some(id) if bitnet_engine::backend::by_id(id).is_none() => {
                notes.push(format!(
                    "kernel {id} of the receipt does not run on this CPU; rerunning with {}",
                    bitnet_engine::backend::detect().id()
                ));
                None
            }
            other => other.clone(),
        };
        let load = LoadOptions {
            threads: opts.threads,
            activation_quantization: s.act_quant,
            kernel,
            head_type,
        };
        let model = Model::open(&actual.model, &load).map_err(VerifyError::Engine)?;

        let max_ctx = model.config().context_length;
        if s.ctx == 0 || s.ctx > max_ctx {
            return Err(bad(
                "settings.ctx",
                format!("{} is outside 1..={max_ctx} (the model's context)", s.ctx),
            ));
        }
        if self.prompt.ids.is_empty() {
            return Err(bad("prompt.ids", "empty"));
        }
        let mut session = model.session(&SessionOptions {
            context: Some(s.ctx),
            kv_type,
            max_batch: s.prefill_batch,
        });
        // A generation ends with `context_full` before it produces `ctx + 1` tokens, so a
        // larger limit behaves exactly like `ctx + 1` (and must not size buffers).
        let params = GenerationParams {
            max_tokens: s.max_tokens.min(s.ctx.saturating_add(1)),
            sampling: s.sampling(),
            stop_ids: s.stop_ids.clone(),
            stop_strings: s.stop.clone(),
        };
        // A constrained output reruns under the same grammar, built from the recorded spec
        // before the first token is sampled.
        let generation = match &s.constraint {
            None => Generation::new(
                &model,
                &mut session,
                &self.prompt.ids,
                params,
                model.tokenizer(),
            ),
            Some(c) => {
                let grammar = c
                    .grammar()
                    .map_err(|e| bad("settings.constraint.schema", e.to_string()))?;
                let texts = model.token_texts().ok_or_else(|| {
                    bad(
                        "settings.constraint",
                        "the model has no tokenizer, so its output cannot have been constrained",
                    )
                })?;
                Generation::new_constrained(
                    &model,
                    &mut session,
                    &self.prompt.ids,
                    params,
                    model.tokenizer(),
                    TokenConstraint::new(&Arc::new(grammar), texts),
                )
            }
        }
        .map_err(VerifyError::Engine)?;
        let (text, ids, finish, _) = generation.collect_text().map_err(VerifyError::Engine)?;

        let expected = &self.output.ids;
        if let Some(i) = (0..expected.len().min(ids.len())).find(|&i| expected[i] != ids[i]) {
            return Err(Mismatch::OutputToken {
                index: i,
                receipt: expected[i],
                rerun: ids[i],
            }
            .into());
        }
        if expected.len() != ids.len() {
            return Err(Mismatch::OutputLength {
                receipt: expected.len(),
                rerun: ids.len(),
            }
            .into());
        }
        if let Some(expected_text) = &self.output.text
            && model.tokenizer().is_some()
            && *expected_text != text
        {
            return Err(Mismatch::OutputText {
                receipt: expected_text.clone(),
                rerun: text,
            }
            .into());
        }
        if finish.as_str() != self.output.finish_reason {
            return Err(Mismatch::FinishReason {
                receipt: self.output.finish_reason.clone(),
                rerun: finish.as_str(),
            }
            .into());
        }

        let mut then: Vec<&str> = self
            .kernels
            .dispatched
            .iter()
            .map(|d| d.id.as_str())
            .collect();
        let counts = model.kernels().dispatch_counts();
        let mut now: Vec<&str> = counts.iter().map(|(id, _)| id.as_str()).collect();
        then.sort_unstable();
        now.sort_unstable();
        if then != now {
            notes.push(format!(
                "kernels differ (receipt: {}; this rerun: {}); the output matches regardless",
                then.join(", "),
                now.join(", ")
            ));
        }
        Ok(Verified {
            tokens: ids.len(),
            notes,
        })
    }
}
