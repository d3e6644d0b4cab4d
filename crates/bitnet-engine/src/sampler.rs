//! Token sampling: penalties (repetition, then OpenAI's frequency/presence) -> greedy, or
//! top-k -> top-p -> min-p -> temperature -> a draw, the order llama.cpp's default chain
//! applies them in.
//!
//! Frequency and presence penalties follow OpenAI's definition,
//! `logit[t] -= count[t] * frequency_penalty + (count[t] > 0) * presence_penalty`, where
//! `count[t]` is how often `t` occurs among the **generated** tokens (all of them, not a
//! window; the prompt does not count: OpenAI speaks of "the text so far" of the completion,
//! and a long prompt would otherwise penalise every word the user wrote). llama.cpp instead
//! counts the last `penalty_last_n` (64) tokens; `repeat_penalty` keeps that windowed
//! behaviour. Penalties shape the distribution that is sampled; they are applied for greedy
//! decoding too.
//!
//! The random generator is ChaCha8 seeded from the user's seed: its output is specified and
//! portable across platforms and `rand` versions, so a seed reproduces a generation anywhere
//! (receipts depend on this). The candidate buffer is allocated once, so sampling a token
//! allocates nothing.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{EngineError, Result};

/// Sampling settings. The defaults are llama.cpp's.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy (argmax).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (`0` = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability mass reaches `top_p` (`1` = all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (`0` = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens by this (`1` = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    /// OpenAI's `presence_penalty`: subtracted once from the logit of every token that was
    /// generated at least once (`0` = off; OpenAI's range is [-2, 2]).
    pub presence_penalty: f32,
    /// OpenAI's `frequency_penalty`: subtracted from a token's logit once per time it was
    /// generated (`0` = off; OpenAI's range is [-2, 2]).
    pub frequency_penalty: f32,
    /// Seed of the random draw.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks every setting's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: f32, reason| EngineError::InvalidSetting {
            name,
            value: value.to_string(),
            reason,
        };
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(bad("temperature", self.temperature, "must be >= 0"));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad("top_p", self.top_p, "must be in (0, 1]"));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(bad("min_p", self.min_p, "must be in [0, 1]"));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(bad("repeat_penalty", self.repeat_penalty, "must be > 0"));
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !v.is_finite() {
                return Err(bad(name, v, "must be a finite number"));
            }
        }
        Ok(())
    }
}

/// A sampler with its own random state and preallocated buffers.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
    candidates: Vec<(f32, u32)>,
    penalized: Vec<bool>,
    /// Per-token counts for the frequency/presence penalties; all zero between calls.
    counts: Vec<u32>,
}

impl Sampler {
    /// A sampler for a vocabulary of `vocab` tokens.
    pub fn new(params: SamplingParams, vocab: usize) -> Result<Self> {
        params.validate()?;
        let counts = if params.presence_penalty != 0.0 || params.frequency_penalty != 0.0 {
            vec![0; vocab]
        } else {
            Vec::new()
        };
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            params,
            candidates: Vec::with_capacity(vocab),
            penalized: vec![false; vocab],
            counts,
        })
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from `logits`, given the tokens so far (for the penalties; every
    /// token of `history` counts as generated for the frequency/presence penalties, see
    /// [`Sampler::sample_after`]).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.sample_after(logits, history, 0)
    }

    /// Like [`Sampler::sample`], with `history[..prompt_len]` being the prompt: the
    /// repetition penalty looks at the last `repeat_last_n` tokens of the whole history
    /// (llama.cpp's rule), the frequency/presence penalties at `history[prompt_len..]` only
    /// (OpenAI's, see the module doc).
    pub fn sample_after(&mut self, logits: &[f32], history: &[u32], prompt_len: usize) -> u32 {
        let p = &self.params;
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));

        if p.repeat_penalty != 1.0 && p.repeat_last_n > 0 {
            let start = history.len().saturating_sub(p.repeat_last_n);
            for &t in &history[start..] {
                let t = t as usize;
                if t < self.candidates.len() && !self.penalized[t] {
                    self.penalized[t] = true;
                    let l = &mut self.candidates[t].0;
                    *l = if *l > 0.0 {
                        *l / p.repeat_penalty
                    } else {
                        *l * p.repeat_penalty
                    };
                }
            }
            for &t in &history[start..] {
                if let Some(flag) = self.penalized.get_mut(t as usize) {
                    *flag = false;
                }
            }
        }

        if !self.counts.is_empty() {
            // Count, then apply once per distinct token and reset its count: no allocation,
            // and `counts` is all zero again afterwards.
            let generated = history.get(prompt_len..).unwrap_or_default();
            for &t in generated {
                if let Some(c) = self.counts.get_mut(t as usize) {
                    *c += 1;
                }
            }
            for &t in generated {
                let t = t as usize;
                let c = self.counts.get_mut(t).map_or(0, std::mem::take);
                if c > 0
                    && let Some(cand) = self.candidates.get_mut(t)
                {
                    cand.0 -= c as f32 * p.frequency_penalty + p.presence_penalty;
                }
            }
        }

        if p.temperature <= 0.0 {
            // Greedy: the first maximum (lowest id on ties), NaN never wins.
            let mut best = (f32::NEG_INFINITY, 0u32);
            for &(l, i) in &self.candidates {
                if l > best.0 {
                    best = (l, i);
                }
            }
            return best.1;
        }

        let by_logit_desc =
            |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let c = &mut self.candidates;
        if p.top_k > 0 && p.top_k < c.len() {
            c.select_nth_unstable_by(p.top_k - 1, by_logit_desc);
            c.truncate(p.top_k);
        }
        c.sort_unstable_by(by_logit_desc);

        // Softmax at temperature 1 for top-p and min-p (as llama.cpp's chain does before the
        // temperature step).
        let max = c[0].0;
        let sum: f32 = c.iter().map(|&(l, _)| (l - max).exp()).sum();
        if p.top_p < 1.0 {
            let mut mass = 0.0f32;
            let mut keep = c.len();
            for (i, &(l, _)) in c.iter().enumerate() {
                mass += (l - max).exp() / sum;
                if mass >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  l_i - max >= ln(min_p)
            let threshold = max + p.min_p.ln();
            let keep = c.iter().take_while(|&&(l, _)| l >= threshold).count();
            c.truncate(keep.max(1));
        }

        let inv_t = 1.0 / p.temperature;
        let total: f32 = c.iter().map(|&(l, _)| ((l - max) * inv_t).exp()).sum();
        let mut r = self.rng.random::<f32>() * total;
        for &(l, i) in c.iter() {
            r -= ((l - max) * inv_t).exp();
            if r <= 0.0 {
                return i;
            }
        }
        c[c.len() - 1].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax_and_lowest_id_on_ties() {
        let mut s = Sampler::new(SamplingParams::greedy(), 4).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0], &[]), 1);
    }

    #[test]
    fn repeat_penalty_changes_the_greedy_choice() {
        let params = SamplingParams {
            repeat_penalty: 2.0,
            ..SamplingParams::greedy()
        };
        let mut s = Sampler::new(params, 3).unwrap();
        // 3.0 / 2 = 1.5 < 2.0
        assert_eq!(s.sample(&[3.0, 2.0, -1.0], &[0, 0]), 1);
        // Negative logits are multiplied: -1 * 2 = -2, so token 2 stays last.
        assert_eq!(s.sample(&[-1.0, -1.5, -3.0], &[0]), 1);
    }

    #[test]
    fn frequency_and_presence_penalties_follow_the_additive_formula() {
        // Token 0 generated twice, token 1 once; the prompt's token 2 does not count.
        let params = SamplingParams {
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            ..SamplingParams::greedy()
        };
        let mut s = Sampler::new(params, 4).unwrap();
        let history = [2, 2, 0, 1, 0];
        // logit 0: 3.0 - 2*0.5 - 0.25 = 1.75; logit 1: 2.2 - 0.5 - 0.25 = 1.45;
        // token 2 untouched at 1.8 wins.
        assert_eq!(s.sample_after(&[3.0, 2.2, 1.8, 0.0], &history, 2), 2);
        // With token 2 slightly lower, token 0 (1.75) wins over 1.7.
        assert_eq!(s.sample_after(&[3.0, 2.2, 1.7, 0.0], &history, 2), 0);
        // Counts are reset between calls: the same call gives the same answer.
        assert_eq!(s.sample_after(&[3.0, 2.2, 1.7, 0.0], &history, 2), 0);
        // Negative penalties favour repeats.
        let params = SamplingParams {
            presence_penalty: -2.0,
            ..SamplingParams::greedy()
        };
        let mut s = Sampler::new(params, 3).unwrap();
        assert_eq!(s.sample_after(&[1.0, 2.5, 0.0], &[0], 0), 0);
    }

    #[test]
    fn top_k_one_is_greedy_whatever_the_seed() {
        for seed in 0..20 {
            let params = SamplingParams {
                temperature: 1.5,
                top_k: 1,
                seed,
                ..SamplingParams::default()
            };
            let mut s = Sampler::new(params, 5).unwrap();
            assert_eq!(s.sample(&[0.0, 1.0, 0.5, 0.9, -2.0], &[]), 1);
        }
    }

    #[test]
    fn min_p_removes_unlikely_tokens() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            seed: 7,
            ..SamplingParams::default()
        };
        let mut s = Sampler::new(params, 3).unwrap();
        // p(token 2) / p(token 0) = e^-5 < 0.5: never drawn.
        for _ in 0..200 {
            assert_ne!(s.sample(&[5.0, 4.9, 0.0], &[]), 2);
        }
    }

    #[test]
    fn same_seed_same_draws_and_distribution_follows_probabilities() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 42,
            ..SamplingParams::default()
        };
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let draw = |n: usize| {
            let mut s = Sampler::new(params.clone(), 2).unwrap();
            (0..n).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = draw(4000);
        assert_eq!(a, draw(4000));
        let ones = a.iter().filter(|&&t| t == 1).count() as f64 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "frequency of token 1: {ones}");
    }

    #[test]
    fn invalid_settings_are_rejected_by_name() {
        let err = Sampler::new(
            SamplingParams {
                top_p: 0.0,
                ..SamplingParams::default()
            },
            2,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("top_p"));
    }
}
