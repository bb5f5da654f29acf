//! The checked, fully defaulted content of a pipeline. These values are also the plan's
//! vocabulary: they serialise as the YAML `est compile` prints and checkpoints store.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub train: Utf8PathBuf,
    pub eval: Option<Utf8PathBuf>,
    pub predict: Option<Utf8PathBuf>,
    pub label: String,
    pub label_vocabulary: Option<Vec<String>>,
    /// Field values that mean "missing", e.g. `NA`.
    pub missing: Vec<String>,
    pub delimiter: char,
    pub header: bool,
    /// Column names given in the file instead of (or over) the header.
    pub columns: Option<Vec<String>>,
    pub bad_rows: BadRows,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRows {
    /// Stop at the first bad row, naming file, line and column.
    Error,
    /// Skip bad rows and report how many were skipped.
    Skip,
}

/// A declared feature column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(flatten)]
    pub kind: FeatureKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    Numeric {
        /// The data column it reads.
        column: String,
        /// Used when the field is missing; without one, a missing field is an error.
        default: Option<f64>,
        normalize: Normalize,
        shape: usize,
    },
    Bucketized {
        source: String,
        boundaries: Vec<f64>,
    },
    Categorical {
        column: String,
        #[serde(flatten)]
        ids: CategoricalIds,
        /// Splits one field into several values (a multivalent column).
        separator: Option<String>,
    },
    Embedding {
        source: String,
        dimension: usize,
        combiner: Combiner,
    },
    Indicator {
        source: String,
    },
    Crossed {
        sources: Vec<String>,
        hash_buckets: u64,
    },
}

impl FeatureKind {
    /// The word used in `.est` files and messages.
    pub fn word(&self) -> &'static str {
        match self {
            FeatureKind::Numeric { .. } => "numeric",
            FeatureKind::Bucketized { .. } => "bucketized",
            FeatureKind::Categorical { .. } => "categorical",
            FeatureKind::Embedding { .. } => "embedding",
            FeatureKind::Indicator { .. } => "indicator",
            FeatureKind::Crossed { .. } => "crossed",
        }
    }

    /// Columns that produce ids rather than dense values: a DNN needs them wrapped.
    pub fn is_sparse(&self) -> bool {
        matches!(self, FeatureKind::Categorical { .. } | FeatureKind::Crossed { .. })
    }

    /// Columns that can feed `embedding`, `indicator` and `crossed`.
    pub fn has_ids(&self) -> bool {
        matches!(self, FeatureKind::Categorical { .. } | FeatureKind::Crossed { .. } | FeatureKind::Bucketized { .. })
    }

    /// The other declared columns this one is built from.
    pub fn sources(&self) -> Vec<&str> {
        match self {
            FeatureKind::Bucketized { source, .. }
            | FeatureKind::Embedding { source, .. }
            | FeatureKind::Indicator { source } => vec![source.as_str()],
            FeatureKind::Crossed { sources, .. } => sources.iter().map(String::as_str).collect(),
            FeatureKind::Numeric { .. } | FeatureKind::Categorical { .. } => vec![],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CategoricalIds {
    Vocabulary { vocabulary: Vec<String>, oov_buckets: u64 },
    Hash { hash_buckets: u64 },
    Identity { identity: u64 },
}

impl CategoricalIds {
    pub fn buckets(&self) -> u64 {
        match self {
            CategoricalIds::Vocabulary { vocabulary, oov_buckets } => vocabulary.len() as u64 + oov_buckets,
            CategoricalIds::Hash { hash_buckets } => *hash_buckets,
            CategoricalIds::Identity { identity } => *identity,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    None,
    Zscore,
    Minmax,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combiner {
    Mean,
    Sum,
    Sqrtn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    DnnClassifier,
    DnnRegressor,
    LinearClassifier,
    LinearRegressor,
    DnnLinearCombinedClassifier,
    DnnLinearCombinedRegressor,
}

impl ModelKind {
    pub const ALL: [(&'static str, ModelKind); 6] = [
        ("dnn_classifier", ModelKind::DnnClassifier),
        ("dnn_regressor", ModelKind::DnnRegressor),
        ("linear_classifier", ModelKind::LinearClassifier),
        ("linear_regressor", ModelKind::LinearRegressor),
        ("dnn_linear_combined_classifier", ModelKind::DnnLinearCombinedClassifier),
        ("dnn_linear_combined_regressor", ModelKind::DnnLinearCombinedRegressor),
    ];

    pub fn word(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).map_or("model", |(w, _)| w)
    }

    pub fn is_classifier(self) -> bool {
        matches!(self, ModelKind::DnnClassifier | ModelKind::LinearClassifier | ModelKind::DnnLinearCombinedClassifier)
    }

    pub fn has_dnn(self) -> bool {
        !matches!(self, ModelKind::LinearClassifier | ModelKind::LinearRegressor)
    }

    pub fn has_linear(self) -> bool {
        !matches!(self, ModelKind::DnnClassifier | ModelKind::DnnRegressor)
    }

    pub fn is_combined(self) -> bool {
        self.has_dnn() && self.has_linear()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub kind: ModelKind,
    /// Classifiers only.
    pub n_classes: Option<u32>,
    pub dnn: Option<DnnSpec>,
    pub linear: Option<LinearSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnnSpec {
    pub inputs: Vec<String>,
    pub hidden_units: Vec<usize>,
    pub activation: Activation,
    pub dropout: f64,
    pub batch_norm: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSpec {
    pub inputs: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Relu6,
    Elu,
    Selu,
    Gelu,
    Tanh,
    Sigmoid,
    Swish,
    LeakyRelu,
    Linear,
}

/// Which parameters an optimizer updates: all of them, or one half of a wide & deep model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    All,
    Dnn,
    Linear,
}

impl Scope {
    pub fn word(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Dnn => "dnn",
            Scope::Linear => "linear",
        }
    }

    /// The block that configures this scope.
    pub fn block(self) -> &'static str {
        match self {
            Scope::All => "optimizer",
            Scope::Dnn => "dnn_optimizer",
            Scope::Linear => "linear_optimizer",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    pub scope: Scope,
    #[serde(flatten)]
    pub kind: OptimizerKind,
    pub learning_rate: f64,
    pub decay: Option<Decay>,
    /// Clip gradients to this global norm.
    pub clip_norm: Option<f64>,
    /// L2 penalty added to the gradient, as torch.optim does.
    pub weight_decay: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerKind {
    Adagrad { initial_accumulator: f64, epsilon: f64 },
    Adam { beta1: f64, beta2: f64, epsilon: f64, amsgrad: bool },
    Sgd { momentum: f64, nesterov: bool },
    Rmsprop { rho: f64, momentum: f64, epsilon: f64, centered: bool },
    Ftrl { learning_rate_power: f64, initial_accumulator: f64, l1: f64, l2: f64, l2_shrinkage: f64, beta: f64 },
}

impl OptimizerKind {
    pub const WORDS: [&'static str; 5] = ["adagrad", "adam", "sgd", "rmsprop", "ftrl"];

    pub fn word(&self) -> &'static str {
        match self {
            OptimizerKind::Adagrad { .. } => "adagrad",
            OptimizerKind::Adam { .. } => "adam",
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::Rmsprop { .. } => "rmsprop",
            OptimizerKind::Ftrl { .. } => "ftrl",
        }
    }

    /// The per-parameter state tensors this optimizer keeps, by slot name.
    pub fn slots(&self) -> Vec<&'static str> {
        match self {
            OptimizerKind::Adagrad { .. } => vec!["accumulator"],
            OptimizerKind::Adam { amsgrad, .. } => {
                let mut s = vec!["exp_avg", "exp_avg_sq"];
                if *amsgrad {
                    s.push("max_exp_avg_sq");
                }
                s
            }
            OptimizerKind::Sgd { momentum, .. } => {
                if *momentum > 0.0 {
                    vec!["momentum_buffer"]
                } else {
                    vec![]
                }
            }
            OptimizerKind::Rmsprop { momentum, centered, .. } => {
                let mut s = vec!["square_avg"];
                if *momentum > 0.0 {
                    s.push("momentum_buffer");
                }
                if *centered {
                    s.push("grad_avg");
                }
                s
            }
            OptimizerKind::Ftrl { .. } => vec!["accumulator", "linear"],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decay {
    Exponential {
        decay_steps: u64,
        decay_rate: f64,
        staircase: bool,
    },
    InverseTime {
        decay_steps: u64,
        decay_rate: f64,
        staircase: bool,
    },
    Polynomial {
        decay_steps: u64,
        end_learning_rate: f64,
        power: f64,
        cycle: bool,
    },
    Cosine {
        decay_steps: u64,
        alpha: f64,
    },
    /// Absolute rates: `values[i]` applies before `boundaries[i]`, the last one after.
    Piecewise {
        boundaries: Vec<u64>,
        values: Vec<f64>,
    },
}

impl Decay {
    pub const WORDS: [&'static str; 5] = ["exponential", "inverse_time", "polynomial", "cosine", "piecewise"];
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub batch_size: usize,
    #[serde(flatten)]
    pub length: TrainLength,
    pub shuffle: bool,
    pub seed: u64,
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
    Steps { steps: u64 },
    /// Until the global step reaches this (`max_steps=...`).
    MaxSteps { max_steps: u64 },
    /// This many passes over the training data (`num_epochs` of the input function).
    Epochs { epochs: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Device {
    Auto,
    Cpu,
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
    Seconds { seconds: f64 },
    Steps { steps: u64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    /// Evaluate during training this often; `None` evaluates only when asked.
    pub every: Option<Cadence>,
    /// Evaluate on this many batches; `None` is the whole eval set.
    pub steps: Option<u64>,
    pub batch_size: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    pub model_dir: Utf8PathBuf,
    pub save_every: Cadence,
    pub keep_max: u32,
    /// Keep one checkpoint per this many seconds forever, on top of `keep_max`.
    pub keep_every: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummariesSpec {
    /// Scalars to TensorBoard every this many steps (`save_summary_steps`).
    pub every: u64,
    /// A log line every this many steps (`log_step_count_steps`).
    pub log_every: u64,
    pub histograms: bool,
}
