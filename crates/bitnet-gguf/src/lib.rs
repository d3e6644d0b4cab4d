//! GGUF v3 reader (memory-mapped, validated, zero-copy) and streaming writer
