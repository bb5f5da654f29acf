//! The run policy blocks: `train`, `eval`, `checkpoint`, `summaries`.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

/// The `train` block, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// Rows per step.
    pub batch_size: usize,
    /// How long one `est train` runs.
    #[serde(flatten)]
    pub length: TrainLength,
    /// Whether each epoch's rows come in a fresh random order.
    pub shuffle: bool,
    /// Seeds initialisation, shuffling and dropout.
    pub seed: u64,
    /// Where to compute.
    pub device: Device,
    /// libtorch's intra-op threads. Plans in checkpoints written before it existed mean `auto`.
    #[serde(default)]
    pub threads: Threads,
}

/// How many threads libtorch computes with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Threads {
    /// One for small models, where splitting each operation costs more than it saves; every
    /// core for large ones.
    #[default]
    Auto,
    /// This many.
    Fixed(usize),
}

impl From<Threads> for String {
    fn from(threads: Threads) -> String {
        match threads {
            Threads::Auto => "auto".into(),
            Threads::Fixed(n) => n.to_string(),
        }
    }
}

impl TryFrom<String> for Threads {
    type Error = String;
    fn try_from(s: String) -> Result<Threads, String> {
        match s.as_str() {
            "auto" => Ok(Threads::Auto),
            n => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(Threads::Fixed)
                .ok_or_else(|| format!("unknown thread count `{n}`")),
        }
    }
}

/// How long one `est train` runs, with tf.estimator's meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TrainLength {
    /// This many more steps (`Estimator.train(steps=...)`).
    Steps {
        /// The steps.
        steps: u64,
    },
    /// Until the global step reaches this (`max_steps=...`).
    MaxSteps {
        /// The global step to stop at.
        max_steps: u64,
    },
    /// This many passes over the training data (`num_epochs` of the input function).
    Epochs {
        /// The passes.
        epochs: u64,
    },
}

/// Where a model computes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Device {
    /// CUDA when libtorch sees a GPU, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// A CUDA device, the first unless numbered.
    Cuda(Option<usize>),
}

impl From<Device> for String {
    fn from(device: Device) -> String {
        match device {
            Device::Auto => "auto".into(),
            Device::Cpu => "cpu".into(),
            Device::Cuda(None) => "cuda".into(),
            Device::Cuda(Some(i)) => format!("cuda:{i}"),
        }
    }
}

impl TryFrom<String> for Device {
    type Error = String;
    fn try_from(s: String) -> Result<Device, String> {
        match s.as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(None)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(|i| Device::Cuda(Some(i)))
                .ok_or_else(|| format!("unknown device `{other}`")),
        }
    }
}

/// When something recurring happens: every so many seconds or steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cadence {
    /// By the clock.
    Seconds {
        /// The interval.
        seconds: f64,
    },
    /// By the global step.
    Steps {
        /// The interval.
        steps: u64,
    },
}

impl Cadence {
    /// Whether it is time again at `step`, when it last happened at `last_step`, `elapsed`
    /// seconds ago.
    pub fn due(&self, step: u64, last_step: u64, elapsed: f64) -> bool {
        match self {
            Cadence::Steps { steps } => step >= last_step + steps,
            Cadence::Seconds { seconds } => elapsed >= *seconds,
        }
    }
}

/// The `eval` block, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    /// Evaluate during training this often; `None` evaluates only when asked.
    pub every: Option<Cadence>,
    /// Evaluate on this many batches; `None` is the whole eval set.
    pub steps: Option<u64>,
    /// Rows per evaluation batch.
    pub batch_size: usize,
}

/// The `checkpoint` block, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    /// Where checkpoints, the manifest and event files go.
    pub model_dir: Utf8PathBuf,
    /// How often training saves.
    pub save_every: Cadence,
    /// How many of the newest checkpoints are kept.
    pub keep_max: u32,
    /// Keep one checkpoint per this many seconds forever, on top of `keep_max`.
    pub keep_every: Option<f64>,
    /// Also keep this many of the best checkpoints by `best_by`, whatever `keep_max` says.
    #[serde(default)]
    pub keep_best: u32,
    /// What "best" means for `keep_best` and `--checkpoint best`.
    #[serde(default)]
    pub best_by: Objective,
}

/// A metric and the direction in which it improves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// A key `est evaluate` prints.
    pub metric: String,
    /// Whether smaller or larger is better.
    pub mode: Mode,
}

impl Default for Objective {
    fn default() -> Self {
        Objective { metric: "average_loss".into(), mode: Mode::Min }
    }
}

impl Objective {
    /// Whether `value` beats `best` by more than `min_delta`.
    pub fn improves(&self, value: f64, best: f64, min_delta: f64) -> bool {
        match self.mode {
            Mode::Min => value < best - min_delta,
            Mode::Max => value > best + min_delta,
        }
    }

    /// `value` turned so that smaller is better, for sorting.
    pub fn cost(&self, value: f64) -> f64 {
        match self.mode {
            Mode::Min => value,
            Mode::Max => -value,
        }
    }
}

/// Which way a metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Smaller is better: losses.
    Min,
    /// Larger is better: accuracy, auc, precision, recall.
    Max,
}

impl Mode {
    /// The direction a metric improves in when the file does not say: Keras' `mode = "auto"`.
    pub fn natural(metric: &str) -> Mode {
        match metric {
            "accuracy" | "auc" | "precision" | "recall" => Mode::Max,
            _ => Mode::Min,
        }
    }
}

/// The `early_stop` block, checked: stop when the metric has not improved for `patience`
/// evaluations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopSpec {
    /// The metric watched, and which way is better.
    #[serde(flatten)]
    pub objective: Objective,
    /// Evaluations without improvement before stopping.
    pub patience: u32,
    /// An improvement must beat the best by more than this.
    pub min_delta: f64,
    /// Never stop before this global step.
    pub min_steps: u64,
}

/// The `summaries` block, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummariesSpec {
    /// Scalars to TensorBoard every this many steps (`save_summary_steps`).
    pub every: u64,
    /// A log line every this many steps (`log_step_count_steps`).
    pub log_every: u64,
    /// Whether hidden layers' activations are written as histograms.
    pub histograms: bool,
}

#[cfg(test)]
mod tests {
    use super::Cadence;

    #[test]
    fn a_cadence_is_due_once_its_interval_has_passed() {
        let steps = Cadence::Steps { steps: 100 };
        assert!(!steps.due(199, 100, 1e9));
        assert!(steps.due(200, 100, 0.0));
        let seconds = Cadence::Seconds { seconds: 600.0 };
        assert!(!seconds.due(1_000_000, 0, 599.9));
        assert!(seconds.due(1, 0, 600.0));
    }
}
