//! Hugging Face BitNet checkpoints: config.json, safetensors shards, ternary weight layouts
