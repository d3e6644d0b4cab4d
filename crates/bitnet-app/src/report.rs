//! Error reporting shared by the binaries: one line per error, every cause once.

use std::error::Error;
use std::io::ErrorKind;

/// The error and its causes on one line, joined by `": "` (like anyhow's `{:#}`).
///
/// An `std::io::Error` shows without its " (os error N)" suffix. A cause whose text the
/// message so far already ends with is skipped: third-party errors sometimes print their own
/// source, and the rule "never format your source" cannot be imposed on them.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io_message(io),
            None => e.to_string(),
        };
        let text = text.trim();
        if !text.is_empty() && !out.ends_with(text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(text);
        }
        next = e.source();
    }
    out.replace('\n', " ")
}

/// An io error's text without the " (os error N)" suffix.
pub fn io_message(err: &std::io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Whether any cause is a write to a closed pipe: the reader went away, which is not a
/// failure of the program (ripgrep exits 0 there too).
pub fn is_broken_pipe(err: &(dyn Error + 'static)) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Prints `program: error: <chain>` on stderr (ignoring a closed stderr); with
/// `--log-format json` one JSON line at level ERROR instead (see [`crate::logging::json_line`]).
pub fn print_error(program: &str, err: &(dyn Error + 'static)) {
    print_error_text(program, &chain(err));
}

/// [`print_error`] for a message that is already text.
pub fn print_error_text(program: &str, message: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = if crate::logging::json_mode() {
        writeln!(
            stderr,
            "{}",
            crate::logging::json_line("ERROR", program, message)
        )
    } else {
        writeln!(stderr, "{program}: error: {message}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("loading model.gguf")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[derive(Debug)]
    struct Repeats(std::io::Error);
    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading: {}", self.0)
        }
    }
    impl Error for Repeats {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_cause_once_on_one_line() {
        let e = Outer(std::io::Error::from_raw_os_error(2));
        assert_eq!(chain(&e), "loading model.gguf: No such file or directory");
        let e = Repeats(std::io::Error::other("gone"));
        assert_eq!(chain(&e), "reading: gone");
        let e = std::io::Error::other("two\nlines");
        assert_eq!(chain(&e), "two lines");
    }

    #[test]
    fn broken_pipe_is_found_anywhere_in_the_chain() {
        let e = Outer(std::io::Error::from(ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&e));
        let e = Outer(std::io::Error::from(ErrorKind::NotFound));
        assert!(!is_broken_pipe(&e));
    }
}
