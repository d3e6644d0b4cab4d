//! The layer table: every tensor of a BitNet b1.58 model, with its Hugging Face name, its GGUF
//! name and its shape as a function of the hyper-parameters.
//!
//! A block holds seven ternary linears ([`Linear`]) and four RMSNorms ([`Norm`]); the model
//! adds the embedding, the final norm and, when not tied, the output head ([`ModelTensor`]).
//! Shapes are PyTorch's `[rows, cols]` = `[out_features, in_features]`; GGUF stores the
//! reverse (`ne`, fastest first). [`BLOCK_ORDER`] is the order in which bitnet.cpp writes a
//! block's tensors, which the converter keeps so its files compare tensor by tensor with
//! bitnet.cpp's.
//!
//! Shapes take [`Dims`] rather than a whole config, so that a reader that has only checked
//! part of a config (the checkpoint reader, before the engine validates) derives shapes from
//! the same four numbers as everyone else.

/// The four widths every tensor shape of a block is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Hidden size (`embedding_length`).
    pub hidden: usize,
    /// Width of the query projection (`heads * head_dim`).
    pub q_dim: usize,
    /// Width of the key and value projections (`kv_heads * head_dim`).
    pub kv_dim: usize,
    /// FFN inner size.
    pub intermediate: usize,
}

/// The ternary projections of a block, in forward order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Linear {
    /// Query projection, `self_attn.q_proj` / `attn_q`.
    QProj,
    /// Key projection, `self_attn.k_proj` / `attn_k`.
    KProj,
    /// Value projection, `self_attn.v_proj` / `attn_v`.
    VProj,
    /// Attention output projection, `self_attn.o_proj` / `attn_output`.
    OProj,
    /// FFN gate, `mlp.gate_proj` / `ffn_gate`.
    GateProj,
    /// FFN up, `mlp.up_proj` / `ffn_up`.
    UpProj,
    /// FFN down, `mlp.down_proj` / `ffn_down`.
    DownProj,
}

impl Linear {
    /// Every projection, in forward order.
    pub const ALL: [Linear; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// Module path inside a Hugging Face block (`self_attn.q_proj`).
    pub fn hf_path(self) -> &'static str {
        match self {
            Self::QProj => "self_attn.q_proj",
            Self::KProj => "self_attn.k_proj",
            Self::VProj => "self_attn.v_proj",
            Self::OProj => "self_attn.o_proj",
            Self::GateProj => "mlp.gate_proj",
            Self::UpProj => "mlp.up_proj",
            Self::DownProj => "mlp.down_proj",
        }
    }

    /// Name inside a GGUF block (`attn_q`), as llama.cpp's tensor map spells it.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::QProj => "attn_q",
            Self::KProj => "attn_k",
            Self::VProj => "attn_v",
            Self::OProj => "attn_output",
            Self::GateProj => "ffn_gate",
            Self::UpProj => "ffn_up",
            Self::DownProj => "ffn_down",
        }
    }

    /// `[rows, cols]` (out, in) of this projection.
    pub fn shape(self, d: &Dims) -> (usize, usize) {
        match self {
            Self::QProj => (d.q_dim, d.hidden),
            Self::KProj | Self::VProj => (d.kv_dim, d.hidden),
            Self::OProj => (d.hidden, d.q_dim),
            Self::GateProj | Self::UpProj => (d.intermediate, d.hidden),
            Self::DownProj => (d.hidden, d.intermediate),
        }
    }

    /// The Hugging Face module of this projection in block `layer`
    /// (`model.layers.0.self_attn.q_proj`); its tensors are `<this>.weight` and, for packed
    /// and unpacked checkpoints, `<this>.weight_scale`.
    pub fn hf_base(self, layer: usize) -> String {
        format!("{}.{}", hf_block(layer), self.hf_path())
    }

    /// The GGUF base name of this projection in block `layer` (`blk.0.attn_q`); its tensors
    /// are `<this>.weight` and the optional per-tensor `<this>.scale` of llama.cpp's `bitnet`.
    pub fn gguf_base(self, layer: usize) -> String {
        format!("{}.{}", gguf_block(layer), self.gguf_name())
    }
}

/// The RMSNorms of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Norm {
    /// Before attention: `input_layernorm` / `attn_norm`.
    Input,
    /// Before the FFN: `post_attention_layernorm` / `ffn_norm`.
    PostAttention,
    /// BitNet's norm of the attention output, before `o_proj`: `self_attn.attn_sub_norm`.
    AttnSub,
    /// BitNet's norm of the FFN's inner activation, before `down_proj`: `mlp.ffn_sub_norm`.
    FfnSub,
}

impl Norm {
    /// Every norm of a block, in forward order.
    pub const ALL: [Norm; 4] = [
        Self::Input,
        Self::AttnSub,
        Self::PostAttention,
        Self::FfnSub,
    ];

    /// Module path inside a Hugging Face block.
    pub fn hf_path(self) -> &'static str {
        match self {
            Self::Input => "input_layernorm",
            Self::PostAttention => "post_attention_layernorm",
            Self::AttnSub => "self_attn.attn_sub_norm",
            Self::FfnSub => "mlp.ffn_sub_norm",
        }
    }

    /// Name inside a GGUF block.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Input => "attn_norm",
            Self::PostAttention => "ffn_norm",
            Self::AttnSub => "attn_sub_norm",
            Self::FfnSub => "ffn_sub_norm",
        }
    }

    /// Length of the norm's weight vector.
    pub fn len(self, d: &Dims) -> usize {
        match self {
            Self::Input | Self::PostAttention => d.hidden,
            Self::AttnSub => d.q_dim,
            Self::FfnSub => d.intermediate,
        }
    }

    /// Hugging Face tensor name in block `layer` (`model.layers.0.input_layernorm.weight`).
    pub fn hf_weight(self, layer: usize) -> String {
        format!("{}.{}.weight", hf_block(layer), self.hf_path())
    }

    /// GGUF tensor name in block `layer` (`blk.0.attn_norm.weight`).
    pub fn gguf_weight(self, layer: usize) -> String {
        format!("{}.{}.weight", gguf_block(layer), self.gguf_name())
    }
}

/// One tensor of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockTensor {
    /// An RMSNorm weight.
    Norm(Norm),
    /// A ternary projection.
    Linear(Linear),
}

/// A block's tensors in the order bitnet.cpp writes them (and the forward pass uses them).
pub const BLOCK_ORDER: [BlockTensor; 11] = [
    BlockTensor::Norm(Norm::Input),
    BlockTensor::Linear(Linear::QProj),
    BlockTensor::Linear(Linear::KProj),
    BlockTensor::Linear(Linear::VProj),
    BlockTensor::Norm(Norm::AttnSub),
    BlockTensor::Linear(Linear::OProj),
    BlockTensor::Norm(Norm::PostAttention),
    BlockTensor::Linear(Linear::GateProj),
    BlockTensor::Linear(Linear::UpProj),
    BlockTensor::Norm(Norm::FfnSub),
    BlockTensor::Linear(Linear::DownProj),
];

/// The tensors outside the blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelTensor {
    /// Token embedding `[vocab, hidden]`.
    Embedding,
    /// Final RMSNorm `[hidden]`.
    OutputNorm,
    /// Output head `[vocab, hidden]`, present only when not tied to the embedding.
    Output,
}

impl ModelTensor {
    /// Hugging Face tensor name.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Embedding => "model.embed_tokens.weight",
            Self::OutputNorm => "model.norm.weight",
            Self::Output => "lm_head.weight",
        }
    }

    /// GGUF tensor name.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Embedding => "token_embd.weight",
            Self::OutputNorm => "output_norm.weight",
            Self::Output => "output.weight",
        }
    }
}

/// Prefix of block `layer`'s Hugging Face tensors.
pub fn hf_block(layer: usize) -> String {
    format!("model.layers.{layer}")
}

/// Prefix of block `layer`'s GGUF tensors.
pub fn gguf_block(layer: usize) -> String {
    format!("blk.{layer}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Dims = Dims {
        hidden: 2560,
        q_dim: 2560,
        kv_dim: 640,
        intermediate: 6912,
    };

    #[test]
    fn names() {
        assert_eq!(Linear::QProj.hf_base(3), "model.layers.3.self_attn.q_proj");
        assert_eq!(Linear::DownProj.gguf_base(0), "blk.0.ffn_down");
        assert_eq!(
            Norm::PostAttention.hf_weight(1),
            "model.layers.1.post_attention_layernorm.weight"
        );
        assert_eq!(Norm::FfnSub.gguf_weight(2), "blk.2.ffn_sub_norm.weight");
        assert_eq!(ModelTensor::Embedding.gguf_name(), "token_embd.weight");
    }

    #[test]
    fn shapes_of_2b4t() {
        let shapes = Linear::ALL.map(|l| l.shape(&D));
        assert_eq!(
            shapes,
            [
                (2560, 2560),
                (640, 2560),
                (640, 2560),
                (2560, 2560),
                (6912, 2560),
                (6912, 2560),
                (2560, 6912)
            ]
        );
        assert_eq!(Norm::ALL.map(|n| n.len(&D)), [2560, 2560, 2560, 6912]);
    }

    #[test]
    fn block_order_holds_every_tensor_once() {
        for l in Linear::ALL {
            let n = BLOCK_ORDER
                .iter()
                .filter(|t| **t == BlockTensor::Linear(l))
                .count();
            assert_eq!(n, 1, "{l:?}");
        }
        for norm in Norm::ALL {
            let n = BLOCK_ORDER
                .iter()
                .filter(|t| **t == BlockTensor::Norm(norm))
                .count();
            assert_eq!(n, 1, "{norm:?}");
        }
        // The linears appear in forward order.
        let linears: Vec<Linear> = BLOCK_ORDER
            .iter()
            .filter_map(|t| match t {
                BlockTensor::Linear(l) => Some(*l),
                BlockTensor::Norm(_) => None,
            })
            .collect();
        assert_eq!(linears, Linear::ALL);
    }
}
