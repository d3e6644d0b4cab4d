//! The model `bitnet-cli` and `bitnet-server` run when no `--model` is given, so the first
//! command a user types produces real ternary inference without a download.
//!
//! `bitnet-rust-docs-5m` is a 5.4 M-parameter BitNet b1.58 model (same architecture as
//! microsoft/bitnet-b1.58-2B-4T: ReLU², sub-norms, GQA, tied head, W1.58A8) trained with
//! Hugging Face transformers' quantisation-aware BitNet layers on the Rust documentation that
//! rustup installs (the book, Rust by Example, the Reference, the Nomicon). Its model card,
//! training data scripts, loss curve and reference numbers are in `models/bitnet-rust-docs-5m/`
//! and `training/` of the repository; the file embedded here is that directory's
//! `bitnet-rust-docs-5m.gguf`, converted from the packed checkpoint by `bitnet-st2gguf
//! --outtype i2_s`. It is small and undertrained: expect Rust-flavoured English, repetition and
//! wrong facts.
//!
//! A crate of its own so the 3.4 MB of model bytes are compiled once and shared by both
//! binaries, and so the engine and CLI crates stay free of build-time data.

#![forbid(unsafe_code)]

/// The model's name, as the binaries print it and receipts record it.
pub const NAME: &str = "bitnet-rust-docs-5m";

/// What receipts and logs show in place of a file path.
pub const PSEUDO_PATH: &str = "<embedded:bitnet-rust-docs-5m>";

/// One-line description for `--help` and start-up messages.
pub const DESCRIPTION: &str =
    "bitnet-rust-docs-5m, a 5.4M-parameter BitNet b1.58 model trained on the Rust documentation";

static GGUF: &[u8] = include_bytes!("../model/bitnet-rust-docs-5m.gguf");

/// The GGUF file's bytes (I2_S ternary weights, F16 embedding, GPT-2 style tokenizer).
pub fn gguf_bytes() -> &'static [u8] {
    GGUF
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_bytes_are_a_gguf_file_of_the_expected_size() {
        let b = super::gguf_bytes();
        assert_eq!(&b[..4], b"GGUF");
        assert_eq!(b.len(), 3357600);
    }
}
