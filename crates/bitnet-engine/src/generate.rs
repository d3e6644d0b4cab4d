//! Generation on one session: prefill the prompt, then sample and decode one token at a time,
//! as an iterator of tokens with their text deltas.
//!
//! What is output and when generation ends is decided by [`crate::Decoder`] (shared with the
//! server's batching scheduler): text deltas never split a UTF-8 character and never show the
//! start of a stop string before it is known not to be one; generation stops at the earliest
//! occurrence of any stop string (OpenAI's semantics).

use std::time::{Duration, Instant};

use bitnet_tokenizer::Tokenizer;

use crate::constraint::TokenConstraint;
use crate::decode::{Decoder, FinishReason, GenerationParams};
use crate::error::{EngineError, Result};
use crate::model::{Model, Session};

/// One generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedToken {
    /// Its id; `None` for text flushed at the end by a stop id (which is not output).
    pub id: Option<u32>,
    /// The text that became final with it (may be empty while bytes or a possible stop string
    /// are held back).
    pub text: String,
}

/// Timings of a generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time spent on the prompt.
    pub prefill: Duration,
    /// Time spent generating (sampling + decoding).
    pub decode: Duration,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill)
    }

    /// Generated tokens per second.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(self.generated_tokens, self.decode)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// A running generation on one session; iterate it for tokens.
///
/// A thin loop over [`Decoder`]: forward the last token, sample, accept. Everything about
/// what is output and when it ends is the decoder's, shared with the server's scheduler.
pub struct Generation<'a> {
    model: &'a Model,
    session: &'a mut Session,
    decoder: Decoder<'a>,
    next: Option<u32>,
    stats: GenerationStats,
}

impl<'a> Generation<'a> {
    /// Prefills `prompt` (after whatever `session` already holds) and prepares to generate.
    /// Text deltas come from `tokenizer` when given (the model's own, usually).
    pub fn new(
        model: &'a Model,
        session: &'a mut Session,
        prompt: &[u32],
        params: GenerationParams,
        tokenizer: Option<&'a Tokenizer>,
    ) -> Result<Self> {
        Self::start(model, session, prompt, params, tokenizer, None)
    }

    /// [`Generation::new`] with the output constrained from the first token on (see
    /// [`Decoder::with_constraint`]): the first token is sampled here, so the constraint
    /// cannot be added afterwards. Receipt verification reruns constrained requests with it.
    pub fn new_constrained(
        model: &'a Model,
        session: &'a mut Session,
        prompt: &[u32],
        params: GenerationParams,
        tokenizer: Option<&'a Tokenizer>,
        constraint: TokenConstraint,
    ) -> Result<Self> {
        Self::start(model, session, prompt, params, tokenizer, Some(constraint))
    }

    fn start(
        model: &'a Model,
        session: &'a mut Session,
        prompt: &[u32],
        params: GenerationParams,
        tokenizer: Option<&'a Tokenizer>,
        constraint: Option<TokenConstraint>,
    ) -> Result<Self> {
        // No more tokens can be generated than the session has room for after the prompt, so
        // `max_tokens` is clamped to that (a `-n` of 10^11 or u64::MAX must not size anything).
        let room = session
            .capacity()
            .saturating_sub(session.position())
            .saturating_sub(prompt.len());
        let params = GenerationParams {
            max_tokens: params.max_tokens.min(room.max(1)),
            ..params
        };
        let mut decoder = Decoder::new(&params, model.config().vocab_size, tokenizer, prompt)?;
        if let Some(c) = constraint {
            decoder = decoder.with_constraint(c);
        }
        let start = Instant::now();
        let logits = model.forward(session, prompt)?;
        let next = decoder.sample(logits);
        let prefill = start.elapsed();
        Ok(Self {
            model,
            session,
            decoder,
            next: Some(next),
            stats: GenerationStats {
                prompt_tokens: prompt.len(),
                prefill,
                ..GenerationStats::default()
            },
        })
    }

    /// Why generation ended (`None` while it runs).
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.decoder.finish_reason()
    }

    /// Timings so far.
    pub fn stats(&self) -> GenerationStats {
        self.stats
    }

    /// Ids generated so far.
    pub fn tokens(&self) -> &[u32] {
        self.decoder.tokens()
    }

    /// Text emitted so far.
    pub fn text(&self) -> &str {
        self.decoder.text()
    }

    /// Runs to the end and returns the whole text, the ids, why it ended and the timings.
    pub fn collect_text(mut self) -> Result<(String, Vec<u32>, FinishReason, GenerationStats)> {
        for t in self.by_ref() {
            t?;
        }
        let reason = self.finish_reason().unwrap_or(FinishReason::Length);
        Ok((
            self.decoder.text().to_string(),
            self.decoder.tokens().to_vec(),
            reason,
            self.stats,
        ))
    }

    fn step(&mut self) -> Result<Option<GeneratedToken>> {
        let Some(id) = self.next.take() else {
            return Ok(None);
        };
        if self.decoder.finish_reason().is_some() {
            return Ok(None);
        }
        let start = Instant::now();
        let room = self.session.position() < self.session.capacity();
        let accepted = self.decoder.accept(id, room)?;
        if accepted.id.is_some() {
            self.stats.generated_tokens += 1;
        }
        if accepted.finish.is_none() {
            let logits = self.model.forward(self.session, &[id])?;
            self.next = Some(self.decoder.sample(logits));
        }
        self.stats.decode += start.elapsed();
        Ok(
            (accepted.id.is_some() || !accepted.text.is_empty()).then_some(GeneratedToken {
                id: accepted.id,
                text: accepted.text,
            }),
        )
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<GeneratedToken, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => None,
            Err(e) => {
                self.next = None;
                Some(Err(e))
            }
        }
    }
}
