//! Checked spec to plan: what will be built and trained, fully explicit. Adds what follows from
//! the spec (column widths, the model head, every variable's name and shape) and the two
//! fingerprints. A plan is a plain serde value: `est compile` prints it, checkpoints store it.

mod build;
pub mod fingerprint;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

pub use build::plan;

use crate::pipeline::{
    CheckpointSpec, DataSpec, DnnSpec, EarlyStopSpec, EvalSpec, Feature, FeatureKind, LinearSpec, ModelKind, Optimizer,
    Scope, SummariesSpec, TrainSpec,
};

/// Bumped when a plan's meaning changes incompatibly.
pub const FORMAT: u32 = 1;

/// A checked pipeline with everything it implies made explicit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `FORMAT`.
    pub format: u32,
    /// The pipeline's name.
    pub pipeline: String,
    /// The `.est` file it was compiled from.
    pub source: Utf8PathBuf,
    /// What decides a checkpoint's compatibility.
    pub fingerprint: Fingerprints,
    /// The `data` block.
    pub data: DataSpec,
    /// In name order, which is also the order the input layer concatenates them in.
    pub features: Vec<FeaturePlan>,
    /// The model, its head and every variable.
    pub model: ModelPlan,
    /// One optimizer for all variables, or one per part.
    pub optimizers: Vec<Optimizer>,
    /// The `train` block.
    pub train: TrainSpec,
    /// The `eval` block.
    pub eval: EvalSpec,
    /// The `early_stop` block, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<EarlyStopSpec>,
    /// The `checkpoint` block, model_dir resolved.
    pub checkpoint: CheckpointSpec,
    /// The `summaries` block.
    pub summaries: SummariesSpec,
}

/// Hashes of what decides a checkpoint's compatibility. Training-only settings are in neither.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    /// The model's tensors and their meaning: columns, model kind, layers, classes, activation.
    pub model: String,
    /// The layout of the optimizer's state.
    pub optimizer: String,
}

/// A feature column and its width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeaturePlan {
    /// The column as declared.
    #[serde(flatten)]
    pub feature: Feature,
    /// Values it contributes to a dense input layer, or for id columns the number of buckets
    /// (the rows of its linear weights).
    pub width: u64,
}

/// The model the plan builds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPlan {
    /// The canned model.
    pub kind: ModelKind,
    /// Its head.
    pub head: Head,
    /// The DNN part, with its input width.
    pub dnn: Option<DnnPlan>,
    /// The linear part.
    pub linear: Option<LinearSpec>,
    /// Every variable the model holds, as named in checkpoints.
    pub variables: Vec<Variable>,
}

/// The head: the loss and the logits it reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Which loss.
    pub kind: HeadKind,
    /// Classes, for classifiers.
    pub n_classes: Option<u32>,
    /// Width of the logits: classes for multi-class, 1 for binary and regression.
    pub logits: u64,
}

/// The loss a head computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// Softmax cross entropy.
    MultiClass,
    /// Sigmoid cross entropy on one logit.
    Binary,
    /// Mean squared error.
    Regression,
}

/// A DNN part with its input layer's width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnnPlan {
    /// Its settings.
    #[serde(flatten)]
    pub spec: DnnSpec,
    /// Values per row its input layer concatenates.
    pub input_width: u64,
}

/// One variable, as checkpoints name and shape it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// tf.estimator's name (`dnn/hiddenlayer_0/kernel`).
    pub name: String,
    /// Its shape; kernels are `[in, out]`.
    pub shape: Vec<u64>,
    /// Updated by the optimizer; moving averages are not.
    pub trainable: bool,
    /// Which part of the model it belongs to.
    pub part: Scope,
}

impl Plan {
    /// The feature column `name`.
    pub fn feature(&self, name: &str) -> Option<&FeaturePlan> {
        self.features.iter().find(|f| f.feature.name == name)
    }

    /// The features the model reads: its parts' inputs and, wherever `follow` says of a
    /// feature, the features it is built from, in the order they are reached.
    pub fn features_read(&self, follow: impl Fn(&FeatureKind) -> bool) -> Vec<&str> {
        let direct =
            self.model.dnn.iter().flat_map(|d| &d.spec.inputs).chain(self.model.linear.iter().flat_map(|l| &l.inputs));
        let mut stack: Vec<&str> = direct.map(String::as_str).collect();
        let mut read: Vec<&str> = Vec::new();
        while let Some(name) = stack.pop() {
            if read.contains(&name) {
                continue;
            }
            read.push(name);
            if let Some(f) = self.feature(name).filter(|f| follow(&f.feature.kind)) {
                stack.extend(f.feature.kind.sources());
            }
        }
        read
    }

    /// Numeric columns in the order the input block lays them out: the DNN's numeric inputs in
    /// input order first, so they form one slice, then the rest by name.
    pub fn numeric_order(&self) -> Vec<String> {
        let numeric =
            |name: &str| self.feature(name).is_some_and(|f| matches!(f.feature.kind, FeatureKind::Numeric { .. }));
        let mut order: Vec<String> =
            self.model.dnn.iter().flat_map(|d| &d.spec.inputs).filter(|n| numeric(n)).cloned().collect();
        for f in &self.features {
            if matches!(f.feature.kind, FeatureKind::Numeric { .. }) && !order.contains(&f.feature.name) {
                order.push(f.feature.name.clone());
            }
        }
        order
    }

    /// The plan as YAML, as `est compile` prints it.
    pub fn to_yaml(&self) -> String {
        // A Plan holds only strings, numbers, lists and maps, which YAML always encodes.
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot encode the plan: {e}\n"))
    }
}
