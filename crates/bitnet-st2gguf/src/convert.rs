//! The conversion: open and check the checkpoint, build the [`Plan`] (everything derived from
//! `config.json` through the schema and checked before anything is written), then stream the
//! tensors into the GGUF writer in file order.
//!
//! Decoding and encoding run in parallel on a rayon pool (`--threads`), the writing stays
//! sequential and streaming: the plan is cut into runs of at most [`BATCH_BYTES`] of output
//! ([`Plan::batches`]), a run's tensors are converted in parallel and then written in order,
//! and the embedding and head are converted in chunks of [`CHUNK_ELEMENTS`] whose pieces are
//! converted in parallel. Each tensor's source pages are released once it is encoded, so
//! peak memory is about one run's output plus one decoded tensor per thread, not the model. The
//! output does not depend on the thread count (every piece is a pure function of its input).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bitnet_schema::ModelConfig;
use bitnet_tokenizer::GgufTokenizerData;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::args::Args;
use crate::ckpt::Checkpoint;
use crate::encode::{convert_range_par, encode_tensor};
use crate::error::{ConvertError, Result};
use crate::gguf::{GgufError, GgufWriter};
use crate::metadata;
use crate::plan::{BATCH_BYTES, CHUNK_ELEMENTS, Plan, Planned, float_size, plan};
use crate::source::{ckpt_err, read_dense};

fn gguf_err<'a>(action: &'static str, path: &'a Path) -> impl Fn(GgufError) -> ConvertError + 'a {
    move |source| ConvertError::Gguf {
        action,
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// Drops the pages of an encoded tensor's sources from memory.
fn release(ckpt: &Checkpoint, t: &Planned) {
    for name in t.hf_sources() {
        ckpt.release(&name, 0, ckpt.tensor_len(&name));
    }
}

/// Converts and writes one run of linears and norms: converted in parallel (each tensor's
/// source pages released as soon as it is encoded, so a run holds its output, not its
/// input), written in order; the first failure in file order is the error.
fn write_batch(
    ckpt: &Checkpoint,
    dir: &Path,
    plan: &Plan,
    batch: &[Planned],
    writer: &mut GgufWriter,
    pb: &ProgressBar,
) -> Result<()> {
    let out = writer.path().to_path_buf();
    let encoded: Vec<Result<Vec<u8>>> = batch
        .par_iter()
        .map(|t| {
            let bytes = encode_tensor(ckpt, dir, plan.outtype, t);
            // Encoded: its source pages are not needed any more (the bytes are owned).
            release(ckpt, t);
            bytes
        })
        .collect();
    for (t, bytes) in batch.iter().zip(encoded) {
        let bytes = bytes?;
        writer
            .write_tensor(&t.name, &bytes)
            .map_err(gguf_err("writing", &out))?;
        pb.inc(bytes.len() as u64);
    }
    Ok(())
}

/// Converts and writes the embedding or the head: the largest tensor, converted and written
/// in chunks, each chunk's source pages released after use, so neither the source nor the
/// output is ever whole in memory.
fn write_dense(
    ckpt: &Checkpoint,
    dir: &Path,
    t: &Planned,
    writer: &mut GgufWriter,
    pb: &ProgressBar,
) -> Result<()> {
    let out = writer.path().to_path_buf();
    let werr = gguf_err("writing", &out);
    let (n, src_size) = {
        let raw = read_dense(ckpt, dir, t)?;
        (raw.len(), float_size(raw.ty))
    };
    writer.begin_tensor(&t.name).map_err(&werr)?;
    for start in (0..n).step_by(CHUNK_ELEMENTS) {
        let end = (start + CHUNK_ELEMENTS).min(n);
        let pieces = {
            let raw = read_dense(ckpt, dir, t)?;
            convert_range_par(&t.hf_name, &raw, start, end, t.ty)?
        };
        for piece in pieces {
            writer.write_chunk(&piece).map_err(&werr)?;
            pb.inc(piece.len() as u64);
        }
        ckpt.release(&t.hf_name, start * src_size, (end - start) * src_size);
    }
    writer.end_tensor().map_err(&werr)?;
    Ok(())
}

fn info(quiet: bool, msg: std::fmt::Arguments<'_>) {
    if !quiet {
        bitnet_app::logging::notice("bitnet-st2gguf", &format!("info: {msg}"));
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} ({eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb
}

/// The tokenizer files of `dir`, fitted to the embedding's rows and with the special ids
/// `config.json` gives; `None` (with a note) when there is no `tokenizer.json`.
fn read_tokenizer(
    ckpt: &Checkpoint,
    dir: &Path,
    vocab: usize,
    quiet: bool,
) -> Result<Option<GgufTokenizerData>> {
    if !dir.join("tokenizer.json").is_file() {
        info(
            quiet,
            format_args!(
                "{} has no tokenizer.json: writing no tokenizer (feed token ids)",
                dir.display()
            ),
        );
        return Ok(None);
    }
    let mut t = GgufTokenizerData::from_hf_dir(dir).map_err(|source| ConvertError::Tokenizer {
        dir: dir.to_path_buf(),
        source,
    })?;
    let padded = metadata::fit_tokenizer(&mut t, vocab, &dir.join("tokenizer.json"))?;
    if padded > 0 {
        info(
            quiet,
            format_args!(
                "tokenizer has {} tokens for {vocab} embedding rows: padding with {padded} unused [PAD<id>] tokens",
                t.tokens.len() - padded,
            ),
        );
    }
    metadata::complete_ids(&mut t, ckpt.config());
    Ok(Some(t))
}

/// Runs the whole conversion described by `args` on a rayon pool of `args.threads` threads
/// (0: rayon's default, every core or `RAYON_NUM_THREADS`).
pub fn run(args: &Args) -> Result<PathBuf> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|source| ConvertError::ThreadPool {
            threads: args.threads,
            source,
        })?;
    pool.install(|| run_on_pool(args))
}

fn run_on_pool(args: &Args) -> Result<PathBuf> {
    let started = Instant::now();
    let dir = args.input_dir();
    let out = args.output_path();
    crate::output::check_not_input(dir, out)?;
    if out.exists() && !args.force {
        return Err(ConvertError::OutputExists {
            path: out.to_path_buf(),
        });
    }
    // The policy all three binaries share: the output's directory exists and the path is no
    // directory, checked before the checkpoint is read.
    bitnet_app::OutputPath::check(out, "--output", args.force)?;
    let ckpt = Checkpoint::open(dir).map_err(ckpt_err(dir))?;
    // The one validation the engine runs too, before the tensor-set check, whose message
    // would be confusing for a non-BitNet model or a broken config.
    let config_err = |source| ConvertError::Config {
        dir: dir.to_path_buf(),
        source,
    };
    let cfg = ModelConfig {
        architecture: args.arch.clone(),
        ..ModelConfig::from_hf(ckpt.config()).map_err(config_err)?
    };
    cfg.validate().map_err(config_err)?;
    ckpt.check_tensor_set().map_err(ckpt_err(dir))?;

    let tokenizer = read_tokenizer(&ckpt, dir, cfg.vocab_size, args.quiet)?;
    let plan = plan(&cfg, ckpt.config(), dir, args, tokenizer.as_ref())?;
    crate::output::remove_stale_temp_files(out, args.quiet);
    // Registered before the file exists: a signal while it is being created still removes it.
    let _registered = crate::output::TempRegistration::new(&bitnet_gguf::temp_path(out));
    let mut writer = GgufWriter::create(out, args.force, plan.metadata.clone(), plan.specs())
        .map_err(gguf_err("creating", out))?;
    debug_assert_eq!(writer.temp_path(), bitnet_gguf::temp_path(out));

    let total = plan.total_bytes();
    let pb = progress_bar(total as u64, args.quiet);
    for range in plan.batches(BATCH_BYTES) {
        let batch = &plan.tensors[range];
        pb.set_message(batch[0].name.clone());
        match batch {
            [t] if t.source.is_dense() => write_dense(&ckpt, dir, t, &mut writer, &pb)?,
            _ => write_batch(&ckpt, dir, &plan, batch, &mut writer, &pb)?,
        }
    }
    pb.finish_and_clear();
    let path = writer.finish().map_err(gguf_err("writing", out))?;

    if args.verify {
        crate::verify::verify(&path, &ckpt, dir, &plan)?;
    }
    if !args.quiet {
        bitnet_app::logging::notice(
            "bitnet-st2gguf",
            &format!(
                "wrote {} ({} tensors, {:.1} MiB of tensor data, {}{}) in {:.1} s",
                path.display(),
                plan.tensors.len(),
                total as f64 / (1 << 20) as f64,
                args.outtype.name(),
                if args.verify { ", verified" } else { "" },
                started.elapsed().as_secs_f64()
            ),
        );
    }
    Ok(path)
}
