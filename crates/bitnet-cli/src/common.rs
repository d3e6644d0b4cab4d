//! Helpers shared by the subcommands: loading a model (with a spinner on a terminal), building
//! engine settings from arguments, prompts, and the [`ModelRef`] of a `--model` value (receipts
//! hash models in `bitnet-receipt`).

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bitnet_engine::{LoadOptions, Model, ModelRef, SamplingParams, SessionOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{ModelArgs, SamplingArgs, SessionArgs};
use crate::error::CliError;

/// Whether `path` is the stand-in for the embedded default model (no `--model` given).
pub fn is_embedded(path: &Path) -> bool {
    path == Path::new(crate::args::EMBEDDED)
}

/// Says on stderr, once per process, that the embedded model is in use (it is not obvious
/// from a command line without `--model`).
fn announce_embedded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        bitnet_app::logging::notice(
            "bitnet-cli",
            &format!(
                "bitnet-cli: no --model given; using the embedded model: {}",
                bitnet_default_model::DESCRIPTION
            ),
        );
    });
}

/// The engine's name for the model at `path` (the embedded model's stand-in included): what
/// receipts identify and `verify-receipt` reloads.
pub fn model_ref(path: &Path) -> ModelRef {
    if is_embedded(path) {
        ModelRef::Embedded
    } else {
        ModelRef::Path(path.to_path_buf())
    }
}

/// Fails with "PATH: no such file or directory" before anything else looks at it.
pub fn require_exists(path: &Path) -> Result<(), CliError> {
    if is_embedded(path) || path.exists() {
        Ok(())
    } else {
        Err(CliError::File {
            path: path.to_path_buf(),
            message: "no such file or directory".into(),
        })
    }
}

/// Fails unless `path` is a regular file (after symlinks): reading a FIFO, a socket or a
/// device as a model or a prompt blocks forever or never ends, so it is refused with a message
/// naming the file before anything opens it.
pub fn require_regular_file(path: &Path) -> Result<(), CliError> {
    require_exists(path)?;
    let meta = std::fs::metadata(path).map_err(|e| CliError::file(path, &e))?;
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "is a directory"
    } else {
        "is not a regular file (a FIFO, socket or device is not read: it could block forever)"
    };
    Err(CliError::File {
        path: path.to_path_buf(),
        message: what.into(),
    })
}

/// Fails on a `--kernel` id this CPU cannot run, naming the ones it can, before any model is
/// read. (`--kernel list` never gets here: the dispatcher prints the list and exits.)
pub fn check_kernel(id: Option<&str>) -> Result<(), CliError> {
    match id {
        Some(id) if bitnet_engine::backend::by_id(id).is_none() => Err(CliError::UnknownKernel {
            id: id.to_string(),
            available: bitnet_engine::backend::available_ids().join(", "),
        }),
        _ => Ok(()),
    }
}

/// Output files checked before any work (see [`bitnet_app::OutputPath`]).
pub fn output(
    path: Option<&Path>,
    flag: &'static str,
    force: bool,
) -> Result<Option<bitnet_app::OutputPath>, bitnet_app::OutputError> {
    bitnet_app::OutputPath::check_opt(path, flag, force)
}

/// A spinner on stderr when it is a terminal; hidden otherwise (pipes and tests).
pub fn spinner(message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        pb.set_style(style);
    }
    pb.set_message(message.to_string());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// The engine's load options for these arguments: without `-t`, the thread count both front
/// ends choose from the model's size and the physical cores
/// ([`bitnet_engine::threads::default_threads`]).
pub fn load_options(args: &ModelArgs) -> LoadOptions {
    LoadOptions {
        threads: args
            .threads
            .unwrap_or_else(|| bitnet_engine::threads::default_threads(&model_ref(&args.model))),
        activation_quantization: !args.no_act_quant,
        kernel: args.kernel.clone(),
        head_type: args.head_type,
    }
}

/// Loads the model named by `args`, showing progress on a terminal; returns it and the time
/// loading took.
pub fn load_model(args: &ModelArgs) -> Result<(Model, Duration)> {
    load_model_with(&args.model, &load_options(args))
}

/// Loads the model `path` names (the embedded one for the `--model` default) with `opts`.
pub fn load_model_with(path: &Path, opts: &LoadOptions) -> Result<(Model, Duration)> {
    require_exists(path)?;
    check_kernel(opts.kernel.as_deref())?;
    let model_ref = model_ref(path);
    let pb = if model_ref == ModelRef::Embedded {
        announce_embedded();
        ProgressBar::hidden()
    } else {
        spinner(&format!("loading {}", path.display()))
    };
    let start = Instant::now();
    let model = Model::open(&model_ref, opts);
    let elapsed = start.elapsed();
    pb.finish_and_clear();
    let model = model?;
    log_loaded(&model, &model_ref.to_string(), elapsed);
    Ok((model, elapsed))
}

/// Logs (at `info`, shown with `-v`) what was loaded and which kernels run it.
fn log_loaded(model: &Model, name: &str, elapsed: Duration) {
    let c = model.config();
    tracing::info!(
        model = name,
        layers = c.n_layers,
        hidden = c.hidden_size,
        vocab = c.vocab_size,
        kernel = model.kernels().backend().id(),
        threads = model.kernels().threads(),
        head = model.head_type().as_str(),
        load_ms = elapsed.as_secs_f64() * 1e3,
        "model loaded"
    );
}

/// The session options for these arguments, checked against the model.
pub fn session_options(
    model: &Model,
    args: &SessionArgs,
    max_batch: usize,
) -> Result<SessionOptions, CliError> {
    let max = model.config().context_length;
    let context = match args.ctx {
        Some(ctx) => {
            let ctx = usize::try_from(ctx).unwrap_or(usize::MAX);
            if ctx > max {
                return Err(CliError::ContextTooLarge { ctx, max });
            }
            Some(ctx)
        }
        None => None,
    };
    Ok(SessionOptions {
        context,
        kv_type: args.kv_type.engine(),
        max_batch,
    })
}

/// Fails with a clear message when `tokens` prompt tokens (plus at least one generated) do not
/// fit in a context of `ctx`.
pub fn check_prompt_fits(model: &Model, tokens: usize, ctx: usize) -> Result<(), CliError> {
    if tokens == 0 {
        return Err(CliError::EmptyPrompt);
    }
    if tokens > ctx {
        return Err(CliError::PromptTooLong {
            tokens,
            ctx,
            max: model.config().context_length,
        });
    }
    Ok(())
}

/// A seed from the clock, for runs that did not give one (it is printed and recorded).
pub fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Mix so that seeds taken close together differ in many bits (splitmix64 finaliser).
    let mut z = (nanos as u64) ^ ((nanos >> 64) as u64) ^ u64::from(std::process::id());
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The engine's sampling settings for these arguments (the seed resolved).
pub fn sampling_params(args: &SamplingArgs) -> SamplingParams {
    SamplingParams {
        temperature: if args.greedy { 0.0 } else { args.temperature },
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        seed: args.seed.unwrap_or_else(clock_seed),
        ..SamplingParams::default()
    }
}

/// Reads a text file, naming it on failure.
pub fn read_text(path: &Path) -> Result<String, CliError> {
    require_regular_file(path)?;
    std::fs::read_to_string(path).map_err(|e| CliError::file(path, &e))
}

/// Reads stdin to the end.
pub fn read_stdin() -> Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

/// Index of the largest value (first one on ties), for greedy steps outside the sampler.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Formats bytes as llama-bench does (`1.10 GiB`, `45.00 MiB`).
pub fn human_bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let n = n as f64;
    if n >= GIB {
        format!("{:.2} GiB", n / GIB)
    } else if n >= MIB {
        format!("{:.2} MiB", n / MIB)
    } else {
        format!("{:.2} KiB", n / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_maximum() {
        assert_eq!(argmax(&[0.0, 3.0, 1.0, 3.0]), 1);
    }
}
