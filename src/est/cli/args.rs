//! Arguments of the training commands, shared by `est` (for `--help`) and `est-torch` (which
//! runs them).

use camino::Utf8PathBuf;
use clap::{Args, ValueEnum};

use crate::checkpoint::Choice;

/// `est train`'s arguments.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// The .est file.
    pub file: Utf8PathBuf,
    /// Train this many more steps, whatever the file says.
    #[arg(long, conflicts_with = "max_steps")]
    pub steps: Option<u64>,
    /// Train until the global step reaches this, whatever the file says.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Use this model_dir instead of the file's (relative to the current folder).
    #[arg(long)]
    pub model_dir: Option<Utf8PathBuf>,
    /// Move model_dir's checkpoints to model_dir/archive/<time>/ and start from scratch.
    #[arg(long, conflicts_with_all = ["warm_start", "reset_optimizer"])]
    pub fresh: bool,
    /// Archive model_dir's checkpoints, then start from their tensors wherever the name and
    /// shape still match, initialising the rest.
    #[arg(long, conflicts_with = "reset_optimizer")]
    pub warm_start: bool,
    /// Keep the weights of a checkpoint whose optimizer changed; start the optimizer state afresh.
    #[arg(long)]
    pub reset_optimizer: bool,
    /// Parse the data files even where the parsed-data cache holds them, and cache nothing.
    #[arg(long)]
    pub no_cache: bool,
}

impl TrainArgs {
    /// What `--fresh`, `--warm-start` and `--reset-optimizer` allow the guard.
    pub fn allow(&self) -> super::guard::Allow {
        super::guard::Allow { fresh: self.fresh, warm_start: self.warm_start, reset_optimizer: self.reset_optimizer }
    }
}

/// `est evaluate`'s arguments.
#[derive(Args, Debug, Clone)]
pub struct EvaluateArgs {
    /// The .est file.
    pub file: Utf8PathBuf,
    /// Evaluate on this file (CSV, compressed CSV or Parquet) or quoted glob instead of the
    /// pipeline's `eval` files.
    #[arg(long)]
    pub data: Option<Utf8PathBuf>,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
    /// Parse the data files even where the parsed-data cache holds them, and cache nothing.
    #[arg(long)]
    pub no_cache: bool,
    /// Use this model_dir instead of the file's.
    #[arg(long)]
    pub model_dir: Option<Utf8PathBuf>,
    /// Which checkpoint: `latest`, `best` (by the checkpoint block's `best_by`, among those
    /// evaluated during training) or a global step.
    #[arg(long, default_value = "latest", value_name = "latest|best|STEP")]
    pub checkpoint: Choice,
}

/// `est predict`'s arguments.
#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// The .est file.
    pub file: Utf8PathBuf,
    /// Rows to predict: a CSV, compressed CSV or Parquet file, or a quoted glob of them (a label
    /// column is not needed). Default: the pipeline's `predict`.
    #[arg(long)]
    pub input: Option<Utf8PathBuf>,
    /// Write here instead of standard output.
    #[arg(long)]
    pub output: Option<Utf8PathBuf>,
    /// Parse the data files even where the parsed-data cache holds them, and cache nothing.
    #[arg(long)]
    pub no_cache: bool,
    /// How to write the predictions.
    #[arg(long, value_enum, default_value_t = PredictFormat::Jsonl)]
    pub format: PredictFormat,
    /// Use this model_dir instead of the file's.
    #[arg(long)]
    pub model_dir: Option<Utf8PathBuf>,
    /// Which checkpoint: `latest`, `best` (by the checkpoint block's `best_by`, among those
    /// evaluated during training) or a global step.
    #[arg(long, default_value = "latest", value_name = "latest|best|STEP")]
    pub checkpoint: Choice,
}

/// How `est predict` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PredictFormat {
    /// One JSON object per line.
    Jsonl,
    /// A header, then one row per prediction.
    Csv,
}

/// What `est report` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained page.
    Html,
    /// Markdown, the curves as images in data URIs.
    Md,
}

/// `est watch`'s arguments.
#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// The .est file.
    pub file: Utf8PathBuf,
    /// What to do when an edit changes the model or the optimizer: train a fresh model in a
    /// new model_dir named after the new fingerprint (the old one untouched), warm-start that
    /// new model_dir from the old checkpoints, or stop training until the next edit.
    #[arg(long, value_enum, default_value_t = OnIncompatible::Fresh)]
    pub on_incompatible: OnIncompatible,
    /// Parse the data files even where the parsed-data cache holds them, and cache nothing.
    #[arg(long)]
    pub no_cache: bool,
    /// Use this model_dir instead of the file's.
    #[arg(long)]
    pub model_dir: Option<Utf8PathBuf>,
}

/// What `est watch` does when an edit makes the checkpoints unfit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnIncompatible {
    /// Train a fresh model in a new model_dir named after the new fingerprints.
    Fresh,
    /// The same, starting from the old checkpoint's tensors where names and shapes match.
    WarmStart,
    /// Stop training until the next edit.
    Stop,
}

/// `est export`'s arguments.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The .est file.
    pub file: Utf8PathBuf,
    /// Use this model_dir instead of the file's.
    #[arg(long)]
    pub model_dir: Option<Utf8PathBuf>,
    /// Which checkpoint: `latest`, `best` (by the checkpoint block's `best_by`, among those
    /// evaluated during training) or a global step.
    #[arg(long, default_value = "latest", value_name = "latest|best|STEP")]
    pub checkpoint: Choice,
    /// The folder to write (it must not exist, or be empty). Default: MODEL_DIR/export/STEP.
    #[arg(long)]
    pub out: Option<Utf8PathBuf>,
}

/// `est featurize`'s arguments.
#[derive(Args, Debug, Clone)]
pub struct FeaturizeArgs {
    /// The .est file.
    pub file: Utf8PathBuf,
    /// Rows to featurize: a CSV, compressed CSV or Parquet file, or a quoted glob of them (a label
    /// column is not needed). Default: the pipeline's `predict`.
    #[arg(long)]
    pub input: Option<Utf8PathBuf>,
}
