//! Incremental detokenization for streaming generation.
//!
//! Byte-level BPE splits characters across tokens (an emoji is often 2-4 tokens), and
//! SentencePiece decoders strip a leading space only at the start of a text, so a token's text
//! depends on its neighbours. [`TextStream`] therefore decodes a short window of ids with the
//! tokenizer's own decoder and emits the part after the already-emitted prefix, holding text
//! back while it ends in an incomplete character (U+FFFD at the end of the window), as Hugging
//! Face's `DecodeStream` and TGI do. Concatenating every delta and [`TextStream::finish`] gives
//! exactly the full decode of the ids.

use crate::{Tokenizer, TokenizerError};

/// Tokens held back before [`TextStream::push`] emits text that still ends in U+FFFD.
const MAX_HELD: usize = 64;

/// Incremental detokenizer: push ids one at a time, get the newly completed text.
///
/// A delta never ends in a partial UTF-8 character: bytes are held back until the character
/// completes. [`TextStream::finish`] flushes what is held (lossy: an incomplete trailing
/// sequence becomes U+FFFD). A decode that legitimately ends in U+FFFD is emitted one token
/// later (or at `finish`). Should more than 64 tokens pile up without a complete character
/// (a model emitting invalid bytes), all but the last 3 are emitted lossily, bounding latency
/// and work.
#[derive(Debug)]
pub struct TextStream<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    ids: Vec<u32>,
    /// Start of the decode window: ids before it are emitted and no longer affect the text.
    prefix: usize,
    /// End of what has been emitted: `ids[prefix..read]` decodes to already-emitted text.
    read: usize,
}

impl<'a> TextStream<'a> {
    /// A stream that keeps special tokens' text (like `decode(ids, false)`).
    pub fn new(tok: &'a Tokenizer) -> Self {
        Self::with_skip_special(tok, false)
    }

    /// A stream that drops special tokens when `skip_special` (like `decode(ids, true)`).
    pub fn with_skip_special(tok: &'a Tokenizer, skip_special: bool) -> Self {
        Self {
            tok,
            skip_special,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    /// Adds one id; returns the text it completes (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, TokenizerError> {
        self.tok.check_ids(&[id])?;
        self.ids.push(id);
        let before = self
            .tok
            .decode(&self.ids[self.prefix..self.read], self.skip_special)?;
        let now = self
            .tok
            .decode(&self.ids[self.prefix..], self.skip_special)?;
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') {
            let delta = suffix_after(&now, &before).to_owned();
            self.advance(self.ids.len());
            return Ok(delta);
        }
        let held = self.ids.len() - self.read;
        if held > MAX_HELD {
            // Safety valve for output that keeps ending in U+FFFD (invalid bytes, or a long run
            // of literal U+FFFD): emit all but the last 3 tokens, which is where an incomplete
            // character can start. Lossy only if a character straddles that cut.
            let end = self.ids.len() - 3;
            let part = self
                .tok
                .decode(&self.ids[self.prefix..end], self.skip_special)?;
            let delta = suffix_after(&part, &before).to_owned();
            self.advance(end);
            return Ok(delta);
        }
        Ok(String::new())
    }

    /// Marks `ids[..end]` emitted, keeping the last emitted token as context (its text is the
    /// left neighbour of what comes next).
    fn advance(&mut self, end: usize) {
        self.prefix = self.read;
        self.read = end;
        if self.prefix > 0 {
            self.ids.drain(..self.prefix);
            self.read -= self.prefix;
            self.prefix = 0;
        }
    }

    /// Flushes held-back text and resets the stream.
    pub fn finish(&mut self) -> Result<String, TokenizerError> {
        let before = self
            .tok
            .decode(&self.ids[self.prefix..self.read], self.skip_special)?;
        let now = self
            .tok
            .decode(&self.ids[self.prefix..], self.skip_special)?;
        self.ids.clear();
        self.prefix = 0;
        self.read = 0;
        Ok(suffix_after(&now, &before).to_owned())
    }
}

/// `now` without the prefix it shares with `before`. The decoders used here only ever extend
/// text, so this is `now[before.len()..]`; should a decoder rewrite earlier text, only the
/// differing tail is returned (cut at a character boundary) rather than panicking.
fn suffix_after<'s>(now: &'s str, before: &str) -> &'s str {
    if let Some(rest) = now.strip_prefix(before) {
        return rest;
    }
    let mut common = 0;
    for ((i, a), b) in now.char_indices().zip(before.chars()) {
        if a != b {
            break;
        }
        common = i + a.len_utf8();
    }
    &now[common..]
}
