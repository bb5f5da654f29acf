//! Checked spec to plan: what will be built and trained, fully explicit. Adds what follows from
//! the spec (column widths, the model head, every variable's name and shape) and the two
//! fingerprints. A plan is a plain serde value: `est compile` prints it, checkpoints store it.

mod build;
pub mod fingerprint;

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

pub use build::plan;

use crate::pipeline::{
    CheckpointSpec, DataSpec, DnnSpec, EvalSpec, Feature, FeatureKind, LinearSpec, ModelKind, Optimizer, Scope,
    SummariesSpec, TrainSpec,
};

/// Bumped when a plan's meaning changes incompatibly.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub pipeline: String,
    /// The `.est` file it was compiled from.
    pub source: Utf8PathBuf,
    pub fingerprint: Fingerprints,
    pub data: DataSpec,
    /// In name order, which is also the order the input layer concatenates them in.
    pub features: Vec<FeaturePlan>,
    pub model: ModelPlan,
    pub optimizers: Vec<Optimizer>,
    pub train: TrainSpec,
    pub eval: EvalSpec,
    pub checkpoint: CheckpointSpec,
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeaturePlan {
    #[serde(flatten)]
    pub feature: Feature,
    /// Values it contributes to a dense input layer, or for id columns the number of buckets
    /// (the rows of its linear weights).
    pub width: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPlan {
    pub kind: ModelKind,
    pub head: Head,
    pub dnn: Option<DnnPlan>,
    pub linear: Option<LinearSpec>,
    /// Every variable the model holds, as named in checkpoints.
    pub variables: Vec<Variable>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub kind: HeadKind,
    pub n_classes: Option<u32>,
    /// Width of the logits: classes for multi-class, 1 for binary and regression.
    pub logits: u64,
}

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnnPlan {
    #[serde(flatten)]
    pub spec: DnnSpec,
    pub input_width: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    pub shape: Vec<u64>,
    /// Updated by the optimizer; moving averages are not.
    pub trainable: bool,
    pub part: Scope,
}

impl Plan {
    pub fn feature(&self, name: &str) -> Option<&FeaturePlan> {
        self.features.iter().find(|f| f.feature.name == name)
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

    pub fn to_yaml(&self) -> String {
        // A Plan holds only strings, numbers, lists and maps, which YAML always encodes.
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot encode the plan: {e}\n"))
    }
}
