//! What a run is asked to do and what it tells: the command line's overrides, how it treats the
//! checkpoints already there, the progress it reports as it goes and the summary it ends with.

use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use est::checkpoint::time::{Clock, SystemClock};
use est::checkpoint::{Choice, Entry};
use est::plan::Plan;
use est::stopping::Stopped;

use super::Metrics;

/// What the command line may override.
#[derive(Clone)]
pub struct RunOptions {
    /// Train this many more steps, whatever the plan says.
    pub steps: Option<u64>,
    /// Train until the global step reaches this, whatever the plan says.
    pub max_steps: Option<u64>,
    /// Use this model_dir instead of the plan's.
    pub model_dir: Option<Utf8PathBuf>,
    /// What to do with the checkpoints already in model_dir.
    pub start: Start,
    /// The checkpoint `evaluate` and `predict` read.
    pub checkpoint: Choice,
    /// Wall-clock time for checkpoint cadence and timestamps; tests pass their own.
    pub clock: Arc<dyn Clock>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            steps: None,
            max_steps: None,
            model_dir: None,
            start: Start::Resume,
            checkpoint: Choice::Latest,
            clock: Arc::new(SystemClock),
        }
    }
}

impl RunOptions {
    /// The model_dir a run of `plan` uses.
    pub fn model_dir(&self, plan: &Plan) -> Utf8PathBuf {
        self.model_dir.as_deref().map_or_else(|| plan.checkpoint.model_dir.clone(), Utf8Path::to_owned)
    }
}

/// How a run treats the checkpoints already in model_dir.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// Continue from the latest, which must match the plan.
    #[default]
    Resume,
    /// Archive them and start from scratch.
    Fresh,
    /// Archive them and start from their tensors where name and shape still match.
    WarmStart,
    /// Start an empty model_dir from the latest checkpoint of another, where names and shapes
    /// match; the other is only read.
    WarmStartFrom(Utf8PathBuf),
    /// Continue from the latest's weights with new optimizer state.
    ResetOptimizer,
}

/// Where training stands, for whoever shows it. Library code prints nothing itself.
pub trait Progress {
    /// A checkpoint was restored; `warnings` name the damaged newer ones passed over.
    fn restored(&mut self, _entry: &Entry, _warnings: &[String]) {}
    /// Training starts at global step `from` and will stop at `to`.
    fn started(&mut self, _from: u64, _to: u64) {}
    /// Every step; `loss` only every `log_every` steps, where reading it costs a device sync.
    fn step(&mut self, _step: u64, _loss: Option<f64>) {}
    /// A checkpoint is on disk.
    fn saved(&mut self, _entry: &Entry) {}
    /// An evaluation during training finished.
    fn evaluated(&mut self, _metrics: &Metrics) {}
    /// Something worth a line: what was read, where it trains, what moved.
    fn note(&mut self, _text: &str) {}
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The global step it started from.
    pub from_step: u64,
    /// The global step it reached.
    pub to_step: u64,
    /// Seconds from the first step to the last save.
    pub seconds: f64,
    /// The last loss read.
    pub last_loss: Option<f64>,
    /// The last checkpoint it wrote.
    pub checkpoint: Option<Entry>,
    /// Whether it stopped because it was asked to.
    pub interrupted: bool,
    /// Why early stopping ended it, if it did.
    pub stopped_early: Option<Stopped>,
    /// Where it wrote.
    pub model_dir: Utf8PathBuf,
}
