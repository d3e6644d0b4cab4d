//! Tokenizers for BitNet models: GGUF metadata or tokenizer.json, chat templates
