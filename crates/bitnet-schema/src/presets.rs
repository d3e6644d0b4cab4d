//! The hyper-parameters of known BitNet models, by name: what `--synthetic <name>` benchmarks
//! and what tests size themselves from, kept beside the schema so that a preset is checked by
//! the same [`ModelConfig::validate`] as a real file.

use crate::activation::Activation;
use crate::config::ModelConfig;

/// Names accepted by [`preset`].
pub const PRESETS: [&str; 4] = ["2b4t", "3b", "700m", "tiny"];

/// Shapes of a known BitNet model by name (ASCII case ignored; `2b` and `large` are aliases).
///
/// - `2b4t`: microsoft/bitnet-b1.58-2B-4T (hidden 2560, 30 layers, FFN 6912, 20 heads, 5 KV
///   heads, vocabulary 128256, context 4096).
/// - `3b`: 1bitLLM/bitnet_b1_58-3B (hidden 3200, 26 layers, FFN 8640, 32 heads).
/// - `700m`: 1bitLLM/bitnet_b1_58-large (hidden 1536, 24 layers, FFN 4096, 16 heads).
/// - `tiny`: the test fixture (hidden 256, 4 layers, FFN 512, 4 heads, 2 KV heads, vocab 512).
pub fn preset(name: &str) -> Option<ModelConfig> {
    let base = |hidden, layers, ffn, heads, kv, vocab, ctx, act| ModelConfig {
        architecture: "bitnet-b1.58".to_string(),
        vocab_size: vocab,
        hidden_size: hidden,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: kv,
        head_dim: hidden / heads,
        intermediate_size: ffn,
        context_length: ctx,
        rms_norm_eps: 1e-5,
        rope_theta: 500_000.0,
        rope_dim: hidden / heads,
        activation: act,
    };
    match name.to_ascii_lowercase().as_str() {
        "2b4t" | "2b" => Some(base(
            2560,
            30,
            6912,
            20,
            5,
            128_256,
            4096,
            Activation::Relu2,
        )),
        "3b" => Some(ModelConfig {
            architecture: "bitnet".to_string(),
            rope_theta: 10_000.0,
            ..base(3200, 26, 8640, 32, 32, 32_002, 2048, Activation::Silu)
        }),
        "700m" | "large" => Some(ModelConfig {
            architecture: "bitnet".to_string(),
            rope_theta: 10_000.0,
            ..base(1536, 24, 4096, 16, 16, 32_002, 2048, Activation::Silu)
        }),
        "tiny" => Some(base(256, 4, 512, 4, 2, 512, 256, Activation::Relu2)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_aliases_agree() {
        for name in PRESETS {
            preset(name).unwrap().validate().unwrap();
        }
        assert_eq!(preset("2B"), preset("2b4t"));
        assert_eq!(preset("large"), preset("700m"));
        assert_eq!(preset("7b"), None);
    }
}
