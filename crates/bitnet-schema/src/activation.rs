//! The feed-forward activation and every name it is spelled by.
//!
//! One table, [`Activation::SPELLINGS`], is the whole vocabulary: `config.json`'s
//! `hidden_act` (read by the converter and by the engine loading a checkpoint directory) and
//! the GGUF key `<arch>.hidden_activation` (read by the engine) both go through
//! [`Activation::from_name`], so a spelling one accepts the other cannot refuse. The
//! converter writes [`Activation::name`], the first spelling of each activation.

use std::fmt;

/// The feed-forward activation `act` in `act(gate(x)) * up(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `relu(x)^2`: BitNet b1.58 2B4T (`hidden_act: relu2`).
    Relu2,
    /// `x * sigmoid(x)`: the 1bitLLM BitNet models llama.cpp calls `bitnet`.
    Silu,
    /// tanh-approximated GELU (`gelu_pytorch_tanh` and `gelu` map here).
    Gelu,
}

impl Activation {
    /// Every accepted name (compared without regard to ASCII case) and what it means. The
    /// first entry of each activation is its canonical name. Spellings come from
    /// transformers' `ACT2FN` (`relu2`, `silu`, `swish`, `gelu`, `gelu_new`,
    /// `gelu_pytorch_tanh`) and from model cards and papers (`relu^2`, `relu_squared`,
    /// `squared_relu`).
    pub const SPELLINGS: [(&'static str, Activation); 9] = [
        ("relu2", Self::Relu2),
        ("relu^2", Self::Relu2),
        ("relu_squared", Self::Relu2),
        ("squared_relu", Self::Relu2),
        ("silu", Self::Silu),
        ("swish", Self::Silu),
        ("gelu", Self::Gelu),
        ("gelu_pytorch_tanh", Self::Gelu),
        ("gelu_new", Self::Gelu),
    ];

    /// Every activation, in table order.
    pub const ALL: [Activation; 3] = [Self::Relu2, Self::Silu, Self::Gelu];

    /// Parses any spelling in [`Self::SPELLINGS`], ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::SPELLINGS
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(name))
            .map(|&(_, a)| a)
    }

    /// The canonical name: what the converter writes to `<arch>.hidden_activation`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu2 => "relu2",
            Self::Silu => "silu",
            Self::Gelu => "gelu",
        }
    }

    /// The accepted spellings, comma-separated, for error messages.
    pub fn known_names() -> String {
        Self::SPELLINGS
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Relu2 => {
                let r = x.max(0.0);
                r * r
            }
            Self::Silu => x / (1.0 + (-x).exp()),
            Self::Gelu => {
                const C: f32 = 0.797_884_6; // sqrt(2/pi)
                0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
            }
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_in_any_case() {
        for (name, act) in Activation::SPELLINGS {
            assert_eq!(Activation::from_name(name), Some(act), "{name}");
            assert_eq!(
                Activation::from_name(&name.to_ascii_uppercase()),
                Some(act),
                "{name}"
            );
        }
        assert_eq!(Activation::from_name("ReLU^2"), Some(Activation::Relu2));
        assert_eq!(Activation::from_name("relu"), None);
        assert_eq!(Activation::from_name(""), None);
    }

    #[test]
    fn canonical_name_is_the_first_spelling_and_round_trips() {
        for act in Activation::ALL {
            let first = Activation::SPELLINGS
                .iter()
                .find(|(_, a)| *a == act)
                .map(|(s, _)| *s);
            assert_eq!(first, Some(act.name()));
            assert_eq!(Activation::from_name(act.name()), Some(act));
        }
    }

    #[test]
    fn values() {
        assert_eq!(Activation::Relu2.apply(-2.0), 0.0);
        assert_eq!(Activation::Relu2.apply(3.0), 9.0);
        assert!((Activation::Silu.apply(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((Activation::Gelu.apply(1.0) - 0.841_192).abs() < 1e-5);
        assert_eq!(Activation::Gelu.apply(0.0), 0.0);
    }
}
