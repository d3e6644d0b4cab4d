//! BitNet b1.58 model, KV cache, forward pass, sampling and generation
