//! Names of the per-block tensors.

/// The ternary projections of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linear {
    /// `self_attn.q_proj`.
    QProj,
    /// `self_attn.k_proj`.
    KProj,
    /// `self_attn.v_proj`.
    VProj,
    /// `self_attn.o_proj`.
    OProj,
    /// `mlp.gate_proj`.
    GateProj,
    /// `mlp.up_proj`.
    UpProj,
    /// `mlp.down_proj`.
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

    /// Module path inside a block.
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
}

/// The RMSNorms of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// `input_layernorm`.
    Input,
    /// `post_attention_layernorm`.
    PostAttention,
    /// `self_attn.attn_sub_norm`.
    AttnSub,
    /// `mlp.ffn_sub_norm`.
    FfnSub,
}

impl Norm {
    /// Every norm of a block.
    pub const ALL: [Norm; 4] = [
        Self::Input,
        Self::PostAttention,
        Self::AttnSub,
        Self::FfnSub,
    ];

    /// Module path inside a block.
    pub fn hf_path(self) -> &'static str {
        match self {
            Self::Input => "input_layernorm",
            Self::PostAttention => "post_attention_layernorm",
            Self::AttnSub => "self_attn.attn_sub_norm",
            Self::FfnSub => "mlp.ffn_sub_norm",
        }
    }
}
