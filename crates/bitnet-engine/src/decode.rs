//! [`Decoder`]: everything that happens to one sequence between two forward passes.
//!
//! Both front ends generate through this one type: `bitnet-cli` through [`crate::Generation`]
//! (a thin loop: forward, [`Decoder::sample`], [`Decoder::accept`]), and `bitnet-server`'s
//! scheduler, which batches many sequences into one forward pass and then drives one
//! `Decoder` per sequence. So sampling, text streaming, stop ids, stop strings (OpenAI's
//! semantics, see [`crate::stop`]), `max_tokens`, the context limit and the finish reason are
//! decided by the same code whichever front end runs a request: the same request gives the
//! same text and finish reason in both.
//!
//! The decoder owns no model and no KV cache; it sees logits and says which token comes next
//! and what text it completes.

use bitnet_tokenizer::{TextStream, Tokenizer};

use crate::constraint::TokenConstraint;
use crate::error::Result;
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::{StopCheck, StopMatcher};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerationParams {
    /// Most new tokens.
    pub max_tokens: usize,
    /// Sampling settings (temperature 0 = greedy).
    pub sampling: SamplingParams,
    /// Ids that end generation (typically the tokenizer's `stop_ids()`); not emitted.
    pub stop_ids: Vec<u32>,
    /// Strings that end generation; the text up to them is emitted, they are not.
    pub stop_strings: Vec<String>,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_tokens: 128,
            sampling: SamplingParams::default(),
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` reached.
    Length,
    /// A stop id (end of sequence / turn) was sampled.
    StopToken,
    /// A stop string appeared in the text.
    StopString,
    /// The context is full.
    ContextFull,
}

impl FinishReason {
    /// Every reason, for parsers and tests.
    pub const ALL: [FinishReason; 4] = [
        Self::Length,
        Self::StopToken,
        Self::StopString,
        Self::ContextFull,
    ];

    /// The canonical name, as receipts and `--json-out` record it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::StopToken => "stop_token",
            Self::StopString => "stop_string",
            Self::ContextFull => "context_full",
        }
    }

    /// The reason named by [`FinishReason::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// The outcome of [`Decoder::accept`] for one sampled token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The token, when it is part of the output (`None` for a stop id: it ends generation
    /// and is not emitted).
    pub id: Option<u32>,
    /// Text that became final with this token (may be empty while bytes of a character or a
    /// possible stop string are held back).
    pub text: String,
    /// Set when this token ended generation.
    pub finish: Option<FinishReason>,
}

/// One sequence's sampling and output state; see the module doc.
pub struct Decoder<'t> {
    sampler: Sampler,
    stream: Option<TextStream<'t>>,
    stops: StopMatcher,
    stop_ids: Vec<u32>,
    max_tokens: usize,
    /// Prompt followed by the generated tokens (the sampler's repetition window).
    history: Vec<u32>,
    prompt_len: usize,
    text: String,
    finish: Option<FinishReason>,
    /// Constrained decoding (see [`crate::constraint`]), when asked for.
    constraint: Option<TokenConstraint>,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("prompt_len", &self.prompt_len)
            .field("generated", &self.tokens().len())
            .field("finish", &self.finish)
            .finish_non_exhaustive()
    }
}

impl<'t> Decoder<'t> {
    /// A decoder for a sequence whose prompt is `prompt`, sampling over `vocab` logits, with
    /// text from `tokenizer` when given. Fails on invalid sampling settings.
    pub fn new(
        params: &GenerationParams,
        vocab: usize,
        tokenizer: Option<&'t Tokenizer>,
        prompt: &[u32],
    ) -> Result<Self> {
        let sampler = Sampler::new(params.sampling.clone(), vocab)?;
        // A sequence never outgrows the largest context a model may have, whatever
        // `max_tokens` says (a client's or a command line's 10^11 must not abort here).
        let reserve = prompt
            .len()
            .saturating_add(params.max_tokens)
            .saturating_add(1)
            .min(bitnet_schema::MAX_CONTEXT + 1);
        let mut history = Vec::with_capacity(reserve);
        history.extend_from_slice(prompt);
        Ok(Self {
            sampler,
            stream: tokenizer.map(TextStream::new),
            stops: StopMatcher::new(&params.stop_strings),
            stop_ids: params.stop_ids.clone(),
            max_tokens: params.max_tokens,
            history,
            prompt_len: prompt.len(),
            text: String::new(),
            finish: (params.max_tokens == 0).then_some(FinishReason::Length),
            constraint: None,
        })
    }

    /// Constrains the output: only tokens that keep it a valid prefix of the constraint's
    /// grammar are sampled, a stop id only once the value is complete, and generation ends
    /// ([`FinishReason::StopToken`]) as soon as the value is complete.
    pub fn with_constraint(mut self, constraint: TokenConstraint) -> Self {
        self.constraint = Some(constraint);
        self
    }

    /// The constraint, if any.
    pub fn constraint(&self) -> Option<&TokenConstraint> {
        self.constraint.as_ref()
    }

    /// Samples the next token from the logits of the last position (no allocation without a
    /// constraint; with one, buffers are allocated on the first masked draw and reused).
    ///
    /// With a constraint, the sampler draws as usual and an allowed draw is kept (as
    /// llama.cpp's grammar sampler does); otherwise it draws again from the logits with every
    /// disallowed token at `-inf`. When no token at all is allowed (a dead state: the
    /// vocabulary cannot spell what must come), the first stop id is returned so the
    /// generation ends.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let first = self
            .sampler
            .sample_after(logits, &self.history, self.prompt_len);
        let Some(c) = self.constraint.as_mut() else {
            return first;
        };
        if c.allows(first, &self.stop_ids) {
            return first;
        }
        let p = self.sampler.params();
        let (top_k, temperature) = (p.top_k, p.temperature);
        match c.mask(logits, &self.stop_ids, top_k, temperature) {
            Some(masked) => {
                let id = self
                    .sampler
                    .sample_after(masked, &self.history, self.prompt_len);
                if c.allows(id, &self.stop_ids) {
                    id
                } else {
                    // Rounding in the draw can fall past the last allowed candidate.
                    c.best_masked().unwrap_or(id)
                }
            }
            None => self.stop_ids.first().copied().unwrap_or(first),
        }
    }

    /// Takes the sampled token `id`: decides whether it is output, what text it completes and
    /// whether generation ends. `room`: whether the sequence's KV cache can take one more
    /// token (if not, generation ends with [`FinishReason::ContextFull`] after this token).
    ///
    /// After a finish, further calls return an empty [`Accepted`] with the same finish.
    pub fn accept(&mut self, id: u32, room: bool) -> Result<Accepted> {
        if let Some(finish) = self.finish {
            return Ok(Accepted {
                id: None,
                text: String::new(),
                finish: Some(finish),
            });
        }
        if self.stop_ids.contains(&id) {
            let (text, stopped) = self.flush()?;
            let finish = if stopped {
                FinishReason::StopString
            } else {
                FinishReason::StopToken
            };
            self.finish = Some(finish);
            return Ok(Accepted {
                id: None,
                text,
                finish: Some(finish),
            });
        }
        self.history.push(id);
        let complete = match self.constraint.as_mut() {
            Some(c) => {
                c.accept(id);
                c.is_done()
            }
            None => false,
        };
        let delta = match self.stream.as_mut() {
            Some(s) => s.push(id)?,
            None => String::new(),
        };
        let (mut text, finish) = match self.stops.push(&delta, false) {
            StopCheck::Stopped(t) => (t, Some(FinishReason::StopString)),
            StopCheck::Text(t) => {
                let limit = if complete {
                    Some(FinishReason::StopToken)
                } else if self.tokens().len() >= self.max_tokens {
                    Some(FinishReason::Length)
                } else if !room {
                    Some(FinishReason::ContextFull)
                } else {
                    None
                };
                (t, limit)
            }
        };
        let finish = match finish {
            Some(FinishReason::Length | FinishReason::ContextFull | FinishReason::StopToken) => {
                let (tail, stopped) = self.flush()?;
                text.push_str(&tail);
                if stopped {
                    Some(FinishReason::StopString)
                } else {
                    finish
                }
            }
            other => other,
        };
        self.text.push_str(&text);
        self.finish = finish;
        Ok(Accepted {
            id: Some(id),
            text,
            finish,
        })
    }

    /// Flushes the text stream and the stop matcher at the end of generation; true when the
    /// flushed text completed a stop string.
    fn flush(&mut self) -> Result<(String, bool)> {
        let tail = match self.stream.as_mut() {
            Some(s) => s.finish()?,
            None => String::new(),
        };
        let (text, stopped) = match self.stops.push(&tail, true) {
            StopCheck::Stopped(t) => (t, true),
            StopCheck::Text(t) => (t, false),
        };
        Ok((text, stopped))
    }

    /// Why generation ended (`None` while it runs).
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Generated ids so far (stop ids excluded).
    pub fn tokens(&self) -> &[u32] {
        &self.history[self.prompt_len..]
    }

    /// Prompt followed by the generated ids.
    pub fn history(&self) -> &[u32] {
        &self.history
    }

    /// Final text so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}
