//! The `model` block: the canned model's kind, its parts and their settings.

use serde::{Deserialize, Serialize};

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
