//! Generation: prefill the prompt, then sample and decode one token at a time, as an iterator
//! of tokens with their text deltas.
//!
//! Text deltas never split a UTF-8 character (the tokenizer's `TextStream` holds back partial
//! bytes) and never show the start of a stop string before it is known not to be one: text
//! that could still grow into a stop string is held back until the next token decides it.

use std::time::{Duration, Instant};

use bitnet_tokenizer::{TextStream, Tokenizer};

use crate::error::{EngineError, Result};
use crate::model::{Model, Session};
use crate::sampler::{Sampler, SamplingParams};

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
    /// OpenAI's name for it (`length` or `stop`).
    pub fn openai_name(self) -> &'static str {
        match self {
            Self::Length | Self::ContextFull => "length",
            Self::StopToken | Self::StopString => "stop",
        }
    }
}

/// One generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedToken {
    /// Its id.
    pub id: u32,
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

/// A running generation; iterate it for tokens.
pub struct Generation<'a> {
    model: &'a Model,
    session: &'a mut Session,
    sampler: Sampler,
    params: GenerationParams,
    stream: Option<TextStream<'a>>,
    history: Vec<u32>,
    generated: Vec<u32>,
    pending: String,
    text: String,
    next: Option<u32>,
    finish: Option<FinishReason>,
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
        let mut sampler = Sampler::new(params.sampling.clone(), model.config().vocab_size)?;
        let start = Instant::now();
        let logits = model.forward(session, prompt)?;
        let next = sampler.sample(logits, prompt);
        let prefill = start.elapsed();
        let mut history = Vec::with_capacity(prompt.len() + params.max_tokens);
        history.extend_from_slice(prompt);
        Ok(Self {
            model,
            session,
            sampler,
            stream: tokenizer.map(TextStream::new),
            history,
            generated: Vec::with_capacity(params.max_tokens),
            pending: String::new(),
            text: String::new(),
            next: Some(next),
            finish: if params.max_tokens == 0 {
                Some(FinishReason::Length)
            } else {
                None
            },
            params,
            stats: GenerationStats {
                prompt_tokens: prompt.len(),
                prefill,
                ..GenerationStats::default()
            },
        })
    }

    /// Why generation ended (`None` while it runs).
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Timings so far.
    pub fn stats(&self) -> GenerationStats {
        self.stats
    }

    /// Ids generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.generated
    }

    /// Text emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Runs to the end and returns the whole text.
    pub fn collect_text(mut self) -> Result<(String, Vec<u32>, FinishReason, GenerationStats)> {
        for t in self.by_ref() {
            t?;
        }
        let reason = self.finish.unwrap_or(FinishReason::Length);
        Ok((self.text, self.generated, reason, self.stats))
    }

    /// Moves the safe part of `pending` to the output, holding back any suffix that could be
    /// the start of a stop string; returns true if a stop string completed.
    fn release(&mut self, out: &mut String, at_end: bool) -> bool {
        for stop in &self.params.stop_strings {
            if stop.is_empty() {
                continue;
            }
            if let Some(i) = self.pending.find(stop.as_str()) {
                out.push_str(&self.pending[..i]);
                self.pending.clear();
                return true;
            }
        }
        let keep_from = if at_end {
            self.pending.len()
        } else {
            self.pending
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| {
                    let tail = &self.pending[i..];
                    self.params
                        .stop_strings
                        .iter()
                        .any(|s| !s.is_empty() && s.starts_with(tail))
                })
                .unwrap_or(self.pending.len())
        };
        out.push_str(&self.pending[..keep_from]);
        self.pending.drain(..keep_from);
        false
    }

    fn step(&mut self) -> Result<Option<GeneratedToken>> {
        if self.finish.is_some() {
            return Ok(None);
        }
        let Some(id) = self.next.take() else {
            return Ok(None);
        };
        let start = Instant::now();
        if self.params.stop_ids.contains(&id) {
            self.finish = Some(FinishReason::StopToken);
            let mut text = String::new();
            if let Some(stream) = self.stream.as_mut() {
                let tail = stream.finish()?;
                self.pending.push_str(&tail);
            }
            self.release(&mut text, true);
            self.text.push_str(&text);
            self.stats.decode += start.elapsed();
            return Ok(if text.is_empty() {
                None
            } else {
                Some(GeneratedToken { id, text })
            });
        }
        self.generated.push(id);
        self.history.push(id);
        self.stats.generated_tokens += 1;

        let mut text = String::new();
        if let Some(stream) = self.stream.as_mut() {
            let delta = stream.push(id)?;
            self.pending.push_str(&delta);
        }
        let stopped = self.release(&mut text, false);
        let done = if stopped {
            Some(FinishReason::StopString)
        } else if self.generated.len() >= self.params.max_tokens {
            Some(FinishReason::Length)
        } else if self.session.position() >= self.session.capacity() {
            Some(FinishReason::ContextFull)
        } else {
            None
        };
        if let Some(reason) = done {
            if reason != FinishReason::StopString {
                if let Some(stream) = self.stream.as_mut() {
                    let tail = stream.finish()?;
                    self.pending.push_str(&tail);
                }
                self.release(&mut text, true);
            }
            self.finish = Some(reason);
        } else {
            let logits = self.model.forward(self.session, &[id])?;
            self.next = Some(self.sampler.sample(logits, &self.history));
        }
        self.text.push_str(&text);
        self.stats.decode += start.elapsed();
        Ok(Some(GeneratedToken { id, text }))
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<GeneratedToken, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => None,
            Err(e) => {
                self.finish = Some(FinishReason::Length);
                Some(Err(e))
            }
        }
    }
}
