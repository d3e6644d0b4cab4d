//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Converts a Hugging Face BitNet b1.58 checkpoint to a GGUF file that bitnet.cpp, llama.cpp
/// and BitNet-rs load.
///
/// The input directory holds `config.json`, `model.safetensors` (or
/// `model.safetensors.index.json` with its shards) and, when present, `tokenizer.json` and
/// `tokenizer_config.json`. All three weight layouts are read: packed 2-bit U8 with
/// `weight_scale` (like microsoft/bitnet-b1.58-2B-4T), unpacked ternary, and bf16/f16/f32
/// master weights (ternarised by absmean). Tensors are converted and written one at a time,
/// so memory stays near the size of the largest tensor.
#[derive(Debug, Parser)]
#[command(name = "bitnet-st2gguf", version, about, long_about)]
pub struct Args {
    /// Logging (-v, --log-format; RUST_LOG overrides the level).
    #[command(flatten)]
    pub log: bitnet_app::LogArgs,

    /// Hugging Face checkpoint directory (or give it with --input).
    #[arg(
        value_name = "DIR",
        required_unless_present_any = ["input_flag", "completions", "man"],
        conflicts_with = "input_flag"
    )]
    pub input: Option<PathBuf>,

    /// Hugging Face checkpoint directory (the same as the positional DIR).
    #[arg(long = "input", short = 'i', value_name = "DIR")]
    pub input_flag: Option<PathBuf>,

    /// GGUF file to write (checked before anything is read: its directory must exist, an
    /// existing file needs --force; written to a temporary file in the same directory, then
    /// renamed).
    #[arg(long, short, value_name = "FILE.gguf", required_unless_present_any = ["completions", "man"])]
    pub output: Option<PathBuf>,

    /// Print a shell completion script for bitnet-st2gguf and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit: `bitnet-st2gguf --man > bitnet-st2gguf.1`.
    #[arg(long, exclusive = true)]
    pub man: bool,

    /// Storage type of the ternary linear weights.
    #[arg(long, value_enum, default_value_t = OutType::I2S)]
    pub outtype: OutType,

    /// Storage type of the token embedding (and of an untied output head).
    /// Default: f16, or f32 when --outtype is f32. `bf16` keeps a bf16 checkpoint exact.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub embed_type: Option<EmbedType>,

    /// `general.architecture` and the prefix of the model keys (`<arch>.block_count`, ...):
    /// one of the architectures BitNet-rs runs (bitnet-b1.58, bitnet-25, bitnet).
    #[arg(long, value_name = "NAME", default_value = bitnet_schema::DEFAULT_ARCHITECTURE, value_parser = parse_arch)]
    pub arch: String,

    /// `general.name` (default: the input directory's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,

    /// After writing, reopen the output and check every tensor against the checkpoint.
    #[arg(long)]
    pub verify: bool,

    /// Threads decoding and encoding tensors (0: one per core, or `RAYON_NUM_THREADS`). The
    /// output is the same for every count.
    #[arg(long, short = 't', value_name = "N", default_value_t = 0)]
    pub threads: usize,

    /// No progress bar and no summary.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Args {
    /// The checkpoint directory, positional or `--input` (clap requires one of them unless
    /// --completions or --man is given; an empty path then).
    pub fn input_dir(&self) -> &std::path::Path {
        self.input
            .as_deref()
            .or(self.input_flag.as_deref())
            .unwrap_or(std::path::Path::new(""))
    }

    /// The output file (clap requires it unless --completions or --man is given).
    pub fn output_path(&self) -> &std::path::Path {
        self.output.as_deref().unwrap_or(std::path::Path::new(""))
    }
}

/// How ternary linear weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutType {
    /// bitnet.cpp's I2_S (GGUF type 36): 2 bits per weight and one f32 scale per tensor.
    #[value(name = "i2_s")]
    I2S,
    /// ggml's TQ2_0: 2.06 bits per weight, one f16 scale per 256 weights.
    #[value(name = "tq2_0")]
    Tq2_0,
    /// ggml's TQ1_0: 1.69 bits per weight, one f16 scale per 256 weights.
    #[value(name = "tq1_0")]
    Tq1_0,
    /// Dequantised `value * scale` in f16 (as llama.cpp's converter writes).
    #[value(name = "f16")]
    F16,
    /// Dequantised `value * scale` in f32.
    #[value(name = "f32")]
    F32,
}

impl OutType {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::I2S => "i2_s",
            Self::Tq2_0 => "tq2_0",
            Self::Tq1_0 => "tq1_0",
            Self::F16 => "f16",
            Self::F32 => "f32",
        }
    }

    /// `general.file_type`: llama.cpp's `llama_ftype` (`ALL_F32` 0, `MOSTLY_F16` 1,
    /// `MOSTLY_TQ1_0` 36, `MOSTLY_TQ2_0` 37) and bitnet.cpp's `MOSTLY_I2_S` 40 (the value in
    /// bitnet.cpp's own I2_S files, e.g. the fixture `tiny-bitnet/i2s/model-i2_s.gguf`).
    pub fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Tq1_0 => 36,
            Self::Tq2_0 => 37,
            Self::I2S => 40,
        }
    }

    /// The embedding type used when `--embed-type` is not given: f16 as bitnet.cpp writes it,
    /// f32 for an all-f32 file.
    pub fn default_embed_type(self) -> EmbedType {
        match self {
            Self::F32 => EmbedType::F32,
            _ => EmbedType::F16,
        }
    }
}

/// Storage type of the embedding and output head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float (bitnet.cpp's choice): exact for bf16 values of magnitude 6.1e-5..65504,
    /// smaller ones lose bits (f16 subnormals).
    F16,
    /// bfloat16 (GGUF type 30): exact for bf16 checkpoints.
    Bf16,
}

/// Architecture names become GGUF key prefixes and decide how the engine reads the file:
/// only the schema's supported architectures are written.
fn parse_arch(s: &str) -> Result<String, String> {
    if bitnet_schema::SUPPORTED_ARCHITECTURES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not an architecture BitNet-rs runs (supported: {})",
            bitnet_schema::SUPPORTED_ARCHITECTURES.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let a =
            Args::try_parse_from(["bitnet-st2gguf", "--input", "d", "--output", "o.gguf"]).unwrap();
        assert_eq!(a.input_dir(), std::path::Path::new("d"));
        assert_eq!(a.output_path(), std::path::Path::new("o.gguf"));
        assert_eq!(a.outtype, OutType::I2S);
        assert_eq!(a.arch, "bitnet-b1.58");
        assert_eq!(a.embed_type, None);
        assert!(!a.force && !a.verify);
    }

    #[test]
    fn input_is_positional_or_a_flag_but_not_both() {
        let a = Args::try_parse_from(["bitnet-st2gguf", "ckpt", "-o", "o.gguf"]).unwrap();
        assert_eq!(a.input_dir(), std::path::Path::new("ckpt"));
        let a = Args::try_parse_from(["bitnet-st2gguf", "-i", "ckpt", "-o", "o.gguf"]).unwrap();
        assert_eq!(a.input_dir(), std::path::Path::new("ckpt"));
        assert!(Args::try_parse_from(["bitnet-st2gguf", "a", "-i", "b", "-o", "o"]).is_err());
        assert!(Args::try_parse_from(["bitnet-st2gguf", "-o", "o.gguf"]).is_err());
        assert!(Args::try_parse_from(["bitnet-st2gguf", "ckpt"]).is_err());
        let a = Args::try_parse_from(["bitnet-st2gguf", "--man"]).unwrap();
        assert!(a.man);
        let a = Args::try_parse_from(["bitnet-st2gguf", "--completions", "zsh"]).unwrap();
        assert_eq!(a.completions, Some(clap_complete::Shell::Zsh));
    }

    #[test]
    fn rejects_bad_arch() {
        let r = Args::try_parse_from([
            "bitnet-st2gguf",
            "--input",
            "d",
            "--output",
            "o",
            "--arch",
            "Bit Net",
        ]);
        assert!(r.is_err());
        let arch = |a: &str| {
            Args::try_parse_from(["bitnet-st2gguf", "-i", "d", "-o", "o", "--arch", a])
                .map(|a| a.arch)
        };
        assert!(arch("llama").is_err());
        for a in bitnet_schema::SUPPORTED_ARCHITECTURES {
            assert_eq!(arch(a).unwrap(), a);
        }
    }
}
