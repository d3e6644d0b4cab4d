//! Command-line arguments (clap derive). Option groups shared by several subcommands (model
//! loading, session, sampling) are flattened structs so every subcommand spells them alike.

use std::path::PathBuf;

use bitnet_engine::HeadType;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// The `--model` value that stands for the embedded default model (what receipts record too).
pub const EMBEDDED: &str = bitnet_default_model::PSEUDO_PATH;

/// Fast, exact CPU inference for ternary BitNet b1.58 models.
///
/// llama.cpp's spellings work too: -m/--model, -p/--prompt, -f/--file, -n/--n-predict,
/// -c/--ctx-size, -t/--threads, --temp, --top-k, --top-p, --min-p, --repeat-penalty, --seed.
#[derive(Debug, Parser)]
#[command(name = "bitnet-cli", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Logging (-v, --log-format; RUST_LOG overrides the level).
    #[command(flatten)]
    pub log: bitnet_app::LogArgs,
    /// Use only the Hugging Face cache for `hf:` models and `pull`: no network (as
    /// HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text (or token ids) from a prompt, streaming it to stdout.
    #[command(visible_alias = "generate")]
    Run(RunArgs),
    /// Interactive conversation using the model's chat template (one turn per line on a pipe).
    Chat(ChatArgs),
    /// Show a GGUF file's metadata and tensors (any llama.cpp or bitnet.cpp GGUF).
    Inspect(InspectArgs),
    /// Turn text into token ids.
    Tokenize(TokenizeArgs),
    /// Turn token ids into text.
    Detokenize(DetokenizeArgs),
    /// Measure prompt-processing and generation speed, like llama-bench.
    Bench(BenchArgs),
    /// Perplexity of a text file.
    #[command(long_about = PERPLEXITY_ABOUT)]
    Perplexity(PerplexityArgs),
    /// Write the logits of every position as a float32 [T, vocab] .npy file.
    Logits(LogitsArgs),
    /// Rerun a receipt written by `run --receipt` and check that the output matches.
    VerifyReceipt(VerifyReceiptArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Download a model from the Hugging Face Hub into its cache and print its local path.
    #[command(long_about = PULL_ABOUT)]
    Pull(PullArgs),
    /// Print the man page (roff; e.g. `bitnet-cli man > bitnet-cli.1`).
    Man,
}

const PULL_ABOUT: &str = "\
Download a model from the Hugging Face Hub into its cache and print its local path.

The repository's .gguf is used (when there are several, the one named *i2_s*, or name one as
ORG/REPO:FILE); a repository with a safetensors checkpoint and no .gguf is downloaded and
converted to GGUF (bitnet-st2gguf's I2_S) into the cache. Files go into the standard Hugging
Face cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub), shared with
Python's huggingface_hub; downloads resume after an interruption and are checked against the
Hub's sha256. HF_TOKEN is sent for gated or private repositories, HF_ENDPOINT names another
Hub, HF_HUB_OFFLINE=1 or --offline uses the cache only. Every command that takes --model
accepts hf:ORG/REPO[:FILE] and pulls it first.";

const PERPLEXITY_ABOUT: &str = "\
Perplexity of a text file.

Definition: the file is tokenized without BOS and cut into non-overlapping windows. When the
tokenizer adds BOS by default, every window is BOS followed by (ctx - 1) text tokens and every
text token in it is scored; otherwise a window is ctx text tokens and every token after the
first is scored. A last, shorter window is scored the same way if it scores at least one
token. Each scored token t contributes log p(t | window tokens before it), from a log-softmax
over the logits computed in f64. PPL = exp(-(sum of log p) / (number of scored tokens)).";

/// Which model to load and how.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// GGUF file, Hugging Face checkpoint directory, or hf:ORG/REPO or hf:ORG/REPO:FILE
    /// (pulled from the Hub into its cache first) [default: the embedded bitnet-rust-docs-5m model, a small
    /// BitNet b1.58 trained on the Rust documentation].
    #[arg(short, long, value_name = "FILE|DIR", default_value = EMBEDDED, hide_default_value = true)]
    pub model: PathBuf,
    /// Worker threads [default: 1 for a model under 50 MB of weights (such as the embedded
    /// one), which more threads only slow down; else one per physical core]. 0 = every
    /// logical core.
    #[arg(short, long, value_name = "N")]
    pub threads: Option<usize>,
    /// Keep activations in f32 instead of quantising them to int8 (not the model as trained;
    /// for cross-checking against references).
    #[arg(long)]
    pub no_act_quant: bool,
    /// Force a kernel implementation by id (default: the fastest this CPU supports);
    /// `--kernel list` prints the ids and which of them this CPU runs.
    #[arg(long, value_name = "ID|list")]
    pub kernel: Option<String>,
    /// Output head storage: `stored` (as in the file: F16 in BitNet GGUFs), `q8_0`
    /// (quantised at load time: about half the bytes per token, a small logit error), `q6_k`
    /// (ggml's Q6_K, as `llama-quantize` writes it: 0.41x the F16 bytes), `q4_k` (ggml's Q4_K
    /// likewise: 0.28x, a larger logit error) or `q4_k_rescored` (Q4_K, its best 32 logits
    /// recomputed from the F16 rows: the F16 head's greedy tokens at Q4_K's bytes).
    #[arg(long, value_name = "TYPE", default_value = "stored", value_parser = parse_head_type)]
    pub head_type: HeadType,
}

/// Parses `--head-type` (see [`HeadType`]'s `FromStr`).
fn parse_head_type(s: &str) -> Result<HeadType, String> {
    s.parse()
}

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvTypeArg {
    /// 32-bit floats (exact).
    F32,
    /// 16-bit floats (half the memory).
    F16,
}

impl KvTypeArg {
    /// The engine's type.
    pub fn engine(self) -> bitnet_engine::KvType {
        match self {
            Self::F32 => bitnet_engine::KvType::F32,
            Self::F16 => bitnet_engine::KvType::F16,
        }
    }
}

/// Session (KV cache) settings.
#[derive(Debug, Args, Clone)]
pub struct SessionArgs {
    /// Context length in tokens: the KV cache is sized by it [default: the model's, at most
    /// 4096].
    #[arg(short = 'c', long = "ctx-size", visible_alias = "ctx", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub ctx: Option<u64>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvTypeArg::F32)]
    pub kv_type: KvTypeArg,
}

/// Sampling settings (defaults as llama.cpp's).
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Most new tokens (clamped to the room the context leaves after the prompt).
    #[arg(
        short = 'n',
        long,
        visible_alias = "n-predict",
        default_value_t = 128,
        value_name = "N"
    )]
    pub max_tokens: usize,
    /// Softmax temperature (0 = greedy).
    #[arg(long, visible_alias = "temp", default_value_t = 0.8, value_parser = non_negative_f32)]
    pub temperature: f32,
    /// Keep only the K most likely tokens (0 = all).
    #[arg(long, default_value_t = 40, value_name = "K")]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P.
    #[arg(long, default_value_t = 0.95, value_parser = unit_open_closed, value_name = "P")]
    pub top_p: f32,
    /// Drop tokens less likely than P times the most likely one (0 = off).
    #[arg(long, default_value_t = 0.05, value_parser = unit_closed, value_name = "P")]
    pub min_p: f32,
    /// Penalise recently seen tokens (1 = off).
    #[arg(long, default_value_t = 1.0, value_parser = positive_f32, value_name = "X")]
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub repeat_last_n: usize,
    /// Random seed (default: taken from the clock and printed, so the run can be repeated).
    #[arg(short, long)]
    pub seed: Option<u64>,
    /// Always pick the most likely token (same as --temperature 0).
    #[arg(long)]
    pub greedy: bool,
    /// Stop when this string appears (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Prompt text (default: read stdin when it is not a terminal).
    #[arg(short, long, group = "input")]
    pub prompt: Option<String>,
    /// Read the prompt text from a file.
    #[arg(
        short = 'f',
        long,
        visible_alias = "file",
        group = "input",
        value_name = "FILE"
    )]
    pub prompt_file: Option<PathBuf>,
    /// Prompt as comma-separated token ids (for models without a tokenizer).
    #[arg(long, group = "input", value_name = "IDS", value_delimiter = ',')]
    pub tokens: Option<Vec<u32>>,
    /// Apply the model's chat template to the prompt (as one user turn).
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat", value_name = "TEXT")]
    pub system: Option<String>,
    /// Print generated token ids instead of text (the default when there is no tokenizer).
    #[arg(long)]
    pub ids: bool,
    /// Write prompt, output and timings as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Write a receipt of the computation (model hash, kernels dispatched, settings, tokens,
    /// timings) to FILE; check it later with `verify-receipt`.
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// Replace existing --json-out / --receipt files (checked before the model loads).
    #[arg(long)]
    pub force: bool,
    /// Print only the generated text, not the prompt before it (printed by default, as
    /// llama-cli does, so the output reads as one text; never with --ids or --chat).
    #[arg(long)]
    pub no_display_prompt: bool,
    /// No timing summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// System message at the start of the conversation.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Do not read or write the line history file (`bitnet-rs/chat_history` under the user's
    /// data directory, e.g. ~/.local/share); history still works within the session.
    #[arg(long)]
    pub no_history: bool,
    /// No timing line after each answer.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The GGUF file.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print arrays in full instead of summarising long ones.
    #[arg(long)]
    pub full: bool,
}

/// `tokenize`.
#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// GGUF file or checkpoint directory holding the tokenizer [default: the embedded
    /// bitnet-rust-docs-5m model].
    #[arg(short, long, value_name = "FILE|DIR", default_value = EMBEDDED, hide_default_value = true)]
    pub model: PathBuf,
    /// The text (default: stdin).
    #[arg(long)]
    pub text: Option<String>,
    /// Do not add BOS even if the tokenizer does by default.
    #[arg(long)]
    pub no_bos: bool,
    /// Parse special tokens written in the text (e.g. `<|eot_id|>`).
    #[arg(long)]
    pub special: bool,
    /// Print JSON (ids and pieces).
    #[arg(long)]
    pub json: bool,
}

/// `detokenize`.
#[derive(Debug, Args)]
pub struct DetokenizeArgs {
    /// GGUF file or checkpoint directory holding the tokenizer [default: the embedded
    /// bitnet-rust-docs-5m model].
    #[arg(short, long, value_name = "FILE|DIR", default_value = EMBEDDED, hide_default_value = true)]
    pub model: PathBuf,
    /// Token ids separated by commas, spaces or newlines, optionally in brackets (`1,2`,
    /// `1 2`, `[1, 2]`): what `tokenize` prints, plain or --json [default: read stdin, so
    /// `bitnet-cli tokenize --text hi | bitnet-cli detokenize` round-trips].
    #[arg(long, value_name = "IDS")]
    pub tokens: Option<String>,
    /// Leave out special tokens (BOS, EOS, ...).
    #[arg(long)]
    pub skip_special: bool,
}

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// GGUF file or checkpoint directory [default: the embedded bitnet-rust-docs-5m model].
    #[arg(short, long, value_name = "FILE|DIR", conflicts_with = "synthetic")]
    pub model: Option<PathBuf>,
    /// Random ternary weights with a known model's shapes, built in memory (2b4t, 3b, 700m,
    /// tiny).
    #[arg(long, value_name = "NAME")]
    pub synthetic: Option<String>,
    /// Prompt lengths to test (pp), comma-separated; 0 skips.
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to test (tg), comma-separated; 0 skips.
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    pub n_gen: Vec<usize>,
    /// Tokens already in the context when each test starts (llama-bench's `-d`),
    /// comma-separated: the prompt is processed, or tokens generated, against a KV cache that
    /// deep (filled untimed first). Rows read `tg128 @ d4096`; the roofline of a tg row counts
    /// the KV cache it reads as well as the weights.
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0",
        value_name = "N"
    )]
    pub n_depth: Vec<usize>,
    /// Thread counts, comma-separated [default: as run and the server choose: 1 for a model
    /// under 50 MB of weights, else one per physical core].
    #[arg(short = 't', long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Also decode this many sequences together (batched decode, as the server does),
    /// comma-separated; each adds a `tgNxP` row with the aggregate tokens/s. 1 adds nothing.
    #[arg(short = 'P', long, value_delimiter = ',', value_name = "P")]
    pub parallel: Vec<usize>,
    /// Repetitions of each test (after one warm-up run that is not counted).
    #[arg(short = 'r', long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub repetitions: u64,
    /// Print JSON (an array of results) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep activations in f32.
    #[arg(long)]
    pub no_act_quant: bool,
    /// Force a kernel implementation by id (`--kernel list` prints them).
    #[arg(long, value_name = "ID|list")]
    pub kernel: Option<String>,
    /// Output head storage: `stored` (as in the model), `q8_0`, `q6_k`, `q4_k` or
    /// `q4_k_rescored`.
    #[arg(long, value_name = "TYPE", default_value = "stored", value_parser = parse_head_type)]
    pub head_type: HeadType,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvTypeArg::F32)]
    pub kv_type: KvTypeArg,
    /// Skip the memory bandwidth probe.
    #[arg(long)]
    pub no_bandwidth: bool,
    /// Size of the bandwidth probe's buffer in MiB (much larger than the caches), split
    /// between the threads.
    #[arg(long, default_value_t = 1024, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub probe_mib: u64,
    /// Timed passes of the bandwidth probe per read kernel (after one untimed); the best one counts.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub probe_passes: u64,
    /// Only run the bandwidth probe for each `-t` thread count and print its GB/s (no model
    /// is loaded): to check it against `scripts/bench/membw_check.sh`'s C read.
    #[arg(long, conflicts_with = "no_bandwidth")]
    pub probe_only: bool,
}

/// `perplexity`.
#[derive(Debug, Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text file.
    #[arg(short, long, value_name = "FILE")]
    pub file: PathBuf,
    /// Window length in tokens [default: 512, or the model's context length when shorter].
    #[arg(short = 'c', long = "ctx-size", visible_alias = "ctx", value_parser = clap::value_parser!(u64).range(2..))]
    pub ctx: Option<u64>,
    /// Score at most this many windows.
    #[arg(long, value_name = "N")]
    pub max_windows: Option<usize>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value_t = KvTypeArg::F32)]
    pub kv_type: KvTypeArg,
    /// Print the final result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `logits`.
#[derive(Debug, Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Comma-separated token ids.
    #[arg(long, value_name = "IDS", value_delimiter = ',', required = true)]
    pub tokens: Vec<u32>,
    /// Output .npy file (checked before the model loads; an existing one needs --force).
    #[arg(short, long, value_name = "FILE.npy")]
    pub out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
    /// KV cache element type (`f16` with `--backend engine` only: the Burn pass keeps no
    /// cache, its keys and values stay f32).
    #[arg(long, value_enum, default_value_t = KvTypeArg::F32)]
    pub kv_type: KvTypeArg,
    /// Which implementation computes the logits: `engine` (the forward pass the other
    /// subcommands run) or `burn` (the whole forward on Burn tensors via bitnet-burn, every
    /// linear on the same kernels; for cross-checking the two).
    #[arg(long, value_enum, default_value_t = LogitsBackend::Engine)]
    pub backend: LogitsBackend,
}

/// Who computes `logits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogitsBackend {
    /// bitnet-engine's `forward_all` on a fresh session.
    Engine,
    /// bitnet-burn's forward pass on burn-ndarray tensors (one causal pass, no KV cache).
    Burn,
}

/// `verify-receipt`.
#[derive(Debug, Args)]
pub struct VerifyReceiptArgs {
    /// The receipt (JSON).
    pub file: PathBuf,
    /// Use this model path instead of the one recorded (its size and hash must still match).
    #[arg(short, long, value_name = "FILE|DIR")]
    pub model: Option<PathBuf>,
    /// Worker threads for the rerun (0 = every logical core; the output must not depend on
    /// it).
    #[arg(short, long, default_value_t = 0)]
    pub threads: usize,
}

/// `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The model: ORG/REPO or ORG/REPO:FILE (an `hf:` prefix is accepted too), e.g.
    /// microsoft/bitnet-b1.58-2B-4T-gguf.
    #[arg(value_name = "ORG/REPO[:FILE]")]
    pub repo: String,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

fn parse_f32(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("'{s}' is not a finite number"))
    }
}

fn non_negative_f32(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err("must be >= 0".into())
    }
}

fn positive_f32(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err("must be > 0".into())
    }
}

fn unit_open_closed(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err("must be in (0, 1]".into())
    }
}

fn unit_closed(s: &str) -> Result<f32, String> {
    let v = parse_f32(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be in [0, 1]".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
