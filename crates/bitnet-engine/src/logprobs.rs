//! Log-probabilities of tokens under the model's distribution, for OpenAI's `logprobs` and
//! `top_logprobs`.
//!
//! They are the log-softmax of the model's **raw** logits at that position: before any
//! penalty, temperature, top-k/top-p/min-p filter, so they describe what the model predicts,
//! as OpenAI's do (llama-server by default reports the probabilities after its sampler chain
//! instead). The sum is taken in f64 after subtracting the maximum, so it neither overflows
//! nor loses the small terms.

/// One token and its log-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLogprob {
    /// The token id.
    pub id: u32,
    /// Its natural-log probability (<= 0).
    pub logprob: f32,
}

/// The log-probability of the chosen token and the most likely alternatives at one position.
#[derive(Debug, Clone, PartialEq)]
pub struct Logprobs {
    /// The token that was sampled.
    pub chosen: TokenLogprob,
    /// The `n` most likely tokens, most likely first (lower id first on ties).
    pub top: Vec<TokenLogprob>,
}

/// `ln(sum(exp(logits)))`, computed stably in f64. NaN logits are skipped (they never win a
/// sample either).
pub fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits
        .iter()
        .copied()
        .filter(|l| !l.is_nan())
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    if max == f64::NEG_INFINITY {
        return max;
    }
    let sum: f64 = logits
        .iter()
        .filter(|l| !l.is_nan())
        .map(|&l| (l as f64 - max).exp())
        .sum();
    max + sum.ln()
}

/// Log-probabilities of `chosen` and of the `top_n` most likely tokens under `logits`.
/// Allocates only the `top_n`-long result (nothing when `top_n` is 0).
pub fn logprobs(logits: &[f32], chosen: u32, top_n: usize) -> Logprobs {
    let lse = log_sum_exp(logits);
    let lp = |l: f32| (l as f64 - lse) as f32;
    let chosen_lp = logits
        .get(chosen as usize)
        .map_or(f32::NEG_INFINITY, |&l| lp(l));
    let mut top: Vec<TokenLogprob> = Vec::with_capacity(top_n.min(logits.len()));
    if top_n > 0 {
        // Insertion into a short sorted list: O(vocab * top_n) worst case, top_n <= 20.
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() {
                continue;
            }
            if top.len() == top_n && top.last().is_some_and(|last| l <= last.logprob) {
                continue;
            }
            let at = top.partition_point(|t| t.logprob >= l);
            if top.len() == top_n {
                top.pop();
            }
            top.insert(
                at,
                TokenLogprob {
                    id: i as u32,
                    logprob: l,
                },
            );
        }
        for t in &mut top {
            t.logprob = lp(t.logprob);
        }
    }
    Logprobs {
        chosen: TokenLogprob {
            id: chosen,
            logprob: chosen_lp,
        },
        top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_log_softmax() {
        let logits = [1.0f32, 3.0, -2.0, 3.0, 0.5];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let want = |i: usize| ((logits[i] as f64).exp() / z).ln() as f32;
        let r = logprobs(&logits, 4, 3);
        assert!((r.chosen.logprob - want(4)).abs() < 1e-6);
        let ids: Vec<u32> = r.top.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![1, 3, 0], "sorted, lower id first on ties");
        for t in &r.top {
            assert!((t.logprob - want(t.id as usize)).abs() < 1e-6);
        }
    }

    #[test]
    fn huge_logits_do_not_overflow() {
        let r = logprobs(&[1000.0, 1000.0, -1000.0], 0, 2);
        assert!((r.chosen.logprob - (0.5f32).ln()).abs() < 1e-6);
        assert_eq!(r.top.len(), 2);
        assert!(logprobs(&[0.0, 1.0], 1, 0).top.is_empty());
    }
}
