//! Command-line plumbing the three binaries share: parsing with clap so that usage errors
//! obey `--log-format json` too, and the shell completion scripts and man pages each binary
//! prints from its own clap definition (so they never drift from the real flags).

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

/// Whether the raw arguments ask for `--log-format json` (looked at before clap has parsed
/// them, so that a usage error can already be reported as JSON).
pub fn wants_json(args: &[OsString]) -> bool {
    let mut iter = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = iter.next() {
        if a == "--log-format=json"
            || (a == "--log-format" && iter.next().as_deref() == Some("json"))
        {
            return true;
        }
    }
    false
}

/// Parses `args` (program name first) into `T`. `--help` and `--version` print and return
/// `Err(ExitCode::SUCCESS)`; a usage error prints clap's message (one JSON line at level
/// ERROR with `--log-format json`) and returns `Err(2)`, the code clap itself uses.
///
/// # Errors
/// The exit code to end the process with, when it should not go on.
pub fn parse<T: clap::Parser>(program: &str, args: Vec<OsString>) -> Result<T, ExitCode> {
    let json = wants_json(&args);
    let mut cmd = T::command();
    let err = match cmd.try_get_matches_from_mut(args) {
        Ok(mut matches) => match T::from_arg_matches_mut(&mut matches) {
            Ok(v) => return Ok(v),
            Err(e) => e.format(&mut cmd),
        },
        Err(e) => e,
    };
    if !err.use_stderr() {
        let _ = err.print();
        return Err(ExitCode::SUCCESS);
    }
    if json {
        // clap's text is several lines (error, usage, a tip); a JSON line carries all of it.
        let text = err.render().to_string();
        let message = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            crate::logging::json_line("ERROR", program, message)
        );
    } else {
        let _ = err.print();
    }
    Err(ExitCode::from(2))
}

/// Writes the completion script of `T`'s command line for `shell` to stdout.
///
/// # Errors
/// Writing to stdout failed (a closed pipe is the caller's to treat as success).
pub fn print_completions<T: CommandFactory>(
    shell: clap_complete::Shell,
    bin: &str,
) -> std::io::Result<()> {
    let mut cmd = T::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut buf);
    write_stdout(&buf)
}

/// Writes the man page (roff, section 1) of `T`'s command line to stdout, as clap_mangen
/// renders it: name, synopsis, every option and subcommand with its help text.
///
/// # Errors
/// Writing to stdout failed.
pub fn print_man<T: CommandFactory>() -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(T::command()).render(&mut buf)?;
    write_stdout(&buf)
}

fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn json_is_seen_in_both_spellings() {
        assert!(wants_json(&os(&["x", "--log-format", "json"])));
        assert!(wants_json(&os(&["x", "run", "--log-format=json"])));
        assert!(!wants_json(&os(&["x", "--log-format", "text"])));
        assert!(!wants_json(&os(&["x", "--log-format"])));
    }

    #[derive(Debug, clap::Parser)]
    #[command(name = "demo")]
    struct Demo {
        /// A number.
        #[arg(long)]
        n: u32,
    }

    #[test]
    fn parse_returns_the_value_or_the_exit_code() {
        let d: Demo = parse("demo", os(&["demo", "--n", "3"])).unwrap();
        assert_eq!(d.n, 3);
        assert_eq!(
            parse::<Demo>("demo", os(&["demo", "--n", "x"])).unwrap_err(),
            ExitCode::from(2)
        );
        assert_eq!(
            parse::<Demo>("demo", os(&["demo", "--help"])).unwrap_err(),
            ExitCode::SUCCESS
        );
    }
}
