//! [`StopMatcher`]: stop strings with OpenAI's semantics, over text that arrives in pieces.
//!
//! Generation ends at the **earliest** occurrence of **any** stop string in the generated text,
//! and the text before it is returned, the stop string and everything after it are not (this
//! is what OpenAI's API and llama-server do; the order of the list does not matter). Because
//! text arrives a token at a time, a suffix that could still grow into a stop string is held
//! back until the next piece decides it, so no caller ever sees the start of a stop string
//! that later completes.
//!
//! Invariant: every occurrence of a stop string starts inside the held-back text, because
//! any suffix that is a prefix of a stop string is held back. So searching the held-back text
//! alone finds the earliest occurrence in the whole output.

/// Matches stop strings against streamed text; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What [`StopMatcher::push`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCheck {
    /// No stop string yet; this text is final (may be empty while a possible stop string is
    /// held back).
    Text(String),
    /// A stop string completed; this is the final text before its earliest occurrence.
    Stopped(String),
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored: they would stop before any text).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Adds `text`; returns what became final. `at_end`: no more text will come, so nothing is
    /// held back.
    pub fn push(&mut self, text: &str, at_end: bool) -> StopCheck {
        self.held.push_str(text);
        let earliest = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = earliest {
            self.held.truncate(at);
            return StopCheck::Stopped(std::mem::take(&mut self.held));
        }
        let keep_from = if at_end {
            self.held.len()
        } else {
            self.held
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| {
                    let tail = &self.held[i..];
                    self.stops.iter().any(|s| s.starts_with(tail))
                })
                .unwrap_or(self.held.len())
        };
        let rest = self.held.split_off(keep_from);
        StopCheck::Text(std::mem::replace(&mut self.held, rest))
    }

    /// Text currently held back (a possible start of a stop string).
    pub fn held(&self) -> &str {
        &self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> StopMatcher {
        StopMatcher::new(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn earliest_occurrence_wins_whatever_the_list_order() {
        let mut m = stops(&["\n\n", "."]);
        assert_eq!(m.push(".\n\n", false), StopCheck::Stopped(String::new()));
        let mut m = stops(&["\n\n", "."]);
        assert_eq!(m.push("ab\n\ncd.", false), StopCheck::Stopped("ab".into()));
        let mut m = stops(&[".", "\n\n"]);
        assert_eq!(m.push("ab\n\ncd.", false), StopCheck::Stopped("ab".into()));
    }

    #[test]
    fn a_possible_stop_prefix_is_held_until_decided() {
        let mut m = stops(&["END"]);
        assert_eq!(m.push("text E", false), StopCheck::Text("text ".into()));
        assert_eq!(m.held(), "E");
        assert_eq!(m.push("N", false), StopCheck::Text(String::new()));
        assert_eq!(m.push("X", false), StopCheck::Text("ENX".into()));
        assert_eq!(m.push(" E", false), StopCheck::Text(" ".into()));
        assert_eq!(m.push("ND tail", false), StopCheck::Stopped(String::new()));
    }

    #[test]
    fn at_end_releases_everything_held() {
        let mut m = stops(&["END"]);
        assert_eq!(m.push("abc EN", false), StopCheck::Text("abc ".into()));
        assert_eq!(m.push("", true), StopCheck::Text("EN".into()));
    }

    #[test]
    fn a_stop_spanning_pieces_cuts_before_its_start() {
        let mut m = stops(&["\n\n"]);
        assert_eq!(m.push("one\n", false), StopCheck::Text("one".into()));
        assert_eq!(m.push("\ntwo", false), StopCheck::Stopped(String::new()));
    }

    #[test]
    fn no_stops_passes_text_through_and_empty_stops_are_ignored() {
        let mut m = stops(&[""]);
        assert_eq!(m.push("abc", false), StopCheck::Text("abc".into()));
    }

    #[test]
    fn multibyte_text_is_cut_at_character_boundaries() {
        let mut m = stops(&["é!"]);
        assert_eq!(m.push("caf\u{e9}", false), StopCheck::Text("caf".into()));
        assert_eq!(m.push("!", false), StopCheck::Stopped(String::new()));
    }
}
