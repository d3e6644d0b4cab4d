//! Logging set-up shared by the binaries (`tracing` + `tracing-subscriber`).
//!
//! The level comes from `RUST_LOG` when set (full `EnvFilter` syntax), else from the flags:
//! each binary has a default level (the CLI and converter `warn`, so their output stays
//! clean; the server `info`), and `-v` raises it one step per use.
//! Lines go to stderr: text (ANSI colours only when stderr is a terminal) or one JSON object
//! per line (`--log-format json`).
//!
//! The writer ignores write errors: when stderr is a pipe whose reader has gone, a log line
//! is lost, but no thread panics and the program carries on (and still honours signals).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::time::FormatTime;

/// Whether `--log-format json` is in force: every line a binary writes to stderr (its own
/// notices and error reports, not only `tracing` events) is then one JSON object.
static JSON: AtomicBool = AtomicBool::new(false);

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// The logging flags every binary takes (flatten into its clap arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The level name for a binary whose default is `default` (an index into error, warn, info,
/// debug, trace) raised by `verbose` steps.
pub fn level(default: usize, verbose: u8) -> &'static str {
    LEVELS[(default + usize::from(verbose)).min(LEVELS.len() - 1)]
}

/// Installs the global subscriber (once; later calls do nothing). `default_level` is the
/// binary's level without flags: `"warn"` or `"info"`.
pub fn init(args: &LogArgs, default_level: &str) {
    let default = LEVELS.iter().position(|l| *l == default_level).unwrap_or(1);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level(default, args.verbose)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LossyStderr);
    JSON.store(args.log_format == LogFormat::Json, Ordering::Relaxed);
    let _ = match args.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// Whether stderr lines must be JSON (`--log-format json` was given to [`init`]).
pub fn json_mode() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One JSON log line in the shape `tracing-subscriber`'s JSON formatter writes
/// (`timestamp`, `level`, `fields.message`, `target`), so a collector sees the binaries' own
/// notices and errors exactly like their `tracing` events.
pub fn json_line(level: &str, target: &str, message: &str) -> String {
    let mut timestamp = String::new();
    let _ = tracing_subscriber::fmt::time::SystemTime.format_time(
        &mut tracing_subscriber::fmt::format::Writer::new(&mut timestamp),
    );
    serde_json::json!({
        "timestamp": timestamp,
        "level": level,
        "fields": { "message": message },
        "target": target,
    })
    .to_string()
}

/// Prints a notice for the user on stderr (a status line such as "using the embedded model"
/// or a timing summary): the text as is, or with `--log-format json` one JSON line at level
/// INFO whose target is `program`. Shown whatever the log level (it is output, not a log);
/// a closed stderr is ignored.
pub fn notice(program: &str, text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if json_mode() {
        writeln!(err, "{}", json_line("INFO", program, text))
    } else {
        writeln!(err, "{text}")
    };
}

/// A warning for the user on stderr: `program: warning: text`, or a JSON line at level WARN.
pub fn warning(program: &str, text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if json_mode() {
        writeln!(err, "{}", json_line("WARN", program, text))
    } else {
        writeln!(err, "{program}: warning: {text}")
    };
}

/// Stderr that drops what it cannot write instead of failing (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = LossyStderr;

    fn make_writer(&'a self) -> Self::Writer {
        LossyStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_raises_the_level_and_saturates() {
        assert_eq!(level(1, 0), "warn");
        assert_eq!(level(1, 1), "info");
        assert_eq!(level(2, 2), "trace");
        assert_eq!(level(2, 9), "trace");
    }

    #[test]
    fn json_lines_have_the_subscriber_shape() {
        let line = json_line("ERROR", "bitnet-cli", "a \"quoted\"\nmessage");
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["target"], "bitnet-cli");
        assert_eq!(v["fields"]["message"], "a \"quoted\"\nmessage");
        // RFC 3339, as tracing-subscriber writes it: 2026-01-02T03:04:05.678901Z.
        let ts = v["timestamp"].as_str().unwrap();
        assert!(
            ts.len() > 20 && ts.ends_with('Z') && ts.contains('T'),
            "{ts}"
        );
    }

    #[test]
    fn a_failed_write_is_swallowed() {
        let mut w = LossyStderr;
        assert_eq!(w.write(b"").unwrap(), 0);
        assert!(w.flush().is_ok());
    }
}
