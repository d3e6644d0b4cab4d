//! Tokenizers for BitNet models: GGUF metadata or tokenizer.json, chat templates, streaming
//! detokenization.
//!
//! - [`Tokenizer`] wraps the Hugging Face `tokenizers` crate (pure-Rust `fancy-regex`
//!   backend), loaded from a tokenizer.json ([`Tokenizer::from_file`]) or built from GGUF
//!   metadata ([`Tokenizer::from_gguf`]): `gpt2` byte-level BPE with the Llama-3 split
//!   (`llama-bpe`), or `llama` SentencePiece. See [`gguf`] for the exact semantics.
//! - [`GgufTokenizerData::from_hf_dir`] is the converter's tokenizer.json → GGUF metadata step,
//!   following llama.cpp's `convert_hf_to_gguf.py`.
//! - [`render_chat`] renders the model's chat template with minijinja, or the BitNet b1.58
//!   2B4T format when the model has none.
//! - [`TextStream`] turns generated ids into text deltas that never split a UTF-8 character.

#![forbid(unsafe_code)]

mod chat;
mod error;
pub mod gguf;
mod hf;
mod stream;
mod tokenizer;

pub use chat::{BITNET_2B4T_CHAT_TEMPLATE, ChatLimits, ChatMessage, ChatTemplate, render_chat};
pub use error::TokenizerError;
pub use gguf::{GgufTokenizerData, LLAMA3_SPLIT_REGEX};
pub use stream::TextStream;
pub use tokenizer::Tokenizer;

// The engine and server share one tokenizer across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<GgufTokenizerData>();
    assert_send_sync::<ChatTemplate>();
};
