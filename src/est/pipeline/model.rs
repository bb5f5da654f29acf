//! The `model` block: the canned model's kind, its parts and their settings.

use serde::{Deserialize, Serialize};

/// tf.estimator's canned models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// `DNNClassifier`.
    DnnClassifier,
    /// `DNNRegressor`.
    DnnRegressor,
    /// `LinearClassifier`.
    LinearClassifier,
    /// `LinearRegressor`.
    LinearRegressor,
    /// `DNNLinearCombinedClassifier` (wide & deep).
    DnnLinearCombinedClassifier,
    /// `DNNLinearCombinedRegressor` (wide & deep).
    DnnLinearCombinedRegressor,
    /// `BaselineClassifier`: logits from a bias alone, which learns the label prior.
    BaselineClassifier,
    /// `BaselineRegressor`: a bias alone, which learns the label mean.
    BaselineRegressor,
}

impl ModelKind {
    /// Each kind with the word `.est` files use for it.
    pub const ALL: [(&'static str, ModelKind); 8] = [
        ("dnn_classifier", ModelKind::DnnClassifier),
        ("dnn_regressor", ModelKind::DnnRegressor),
        ("linear_classifier", ModelKind::LinearClassifier),
        ("linear_regressor", ModelKind::LinearRegressor),
        ("dnn_linear_combined_classifier", ModelKind::DnnLinearCombinedClassifier),
        ("dnn_linear_combined_regressor", ModelKind::DnnLinearCombinedRegressor),
        ("baseline_classifier", ModelKind::BaselineClassifier),
        ("baseline_regressor", ModelKind::BaselineRegressor),
    ];

    /// The word `.est` files use.
    pub fn word(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).map_or("model", |(w, _)| w)
    }

    /// Whether its head classifies.
    pub fn is_classifier(self) -> bool {
        matches!(
            self,
            ModelKind::DnnClassifier
                | ModelKind::LinearClassifier
                | ModelKind::DnnLinearCombinedClassifier
                | ModelKind::BaselineClassifier
        )
    }

    /// Whether it has a DNN part.
    pub fn has_dnn(self) -> bool {
        matches!(
            self,
            ModelKind::DnnClassifier
                | ModelKind::DnnRegressor
                | ModelKind::DnnLinearCombinedClassifier
                | ModelKind::DnnLinearCombinedRegressor
        )
    }

    /// Whether it has a linear part.
    pub fn has_linear(self) -> bool {
        matches!(
            self,
            ModelKind::LinearClassifier
                | ModelKind::LinearRegressor
                | ModelKind::DnnLinearCombinedClassifier
                | ModelKind::DnnLinearCombinedRegressor
        )
    }

    /// Whether it is a bias alone, reading no features.
    pub fn is_baseline(self) -> bool {
        matches!(self, ModelKind::BaselineClassifier | ModelKind::BaselineRegressor)
    }

    /// Whether it has both (wide & deep).
    pub fn is_combined(self) -> bool {
        self.has_dnn() && self.has_linear()
    }
}

/// The `model` block, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The canned model.
    pub kind: ModelKind,
    /// Classifiers only.
    pub n_classes: Option<u32>,
    /// The DNN part, for models that have one.
    pub dnn: Option<DnnSpec>,
    /// The linear part, for models that have one.
    pub linear: Option<LinearSpec>,
}

impl ModelSpec {
    /// The keys `est evaluate` prints for this model, in the order it prints them.
    pub fn metrics(&self) -> &'static [&'static str] {
        match (self.kind.is_classifier(), self.n_classes) {
            (true, Some(n)) if n > 2 => &["accuracy", "average_loss", "loss"],
            (true, _) => &[
                "accuracy",
                "accuracy_baseline",
                "auc",
                "average_loss",
                "label/mean",
                "loss",
                "precision",
                "prediction/mean",
                "recall",
            ],
            (false, _) => &["average_loss", "label/mean", "loss", "prediction/mean"],
        }
    }
}

/// A DNN part's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnnSpec {
    /// The dense columns it reads, in name order.
    pub inputs: Vec<String>,
    /// Each hidden layer's width.
    pub hidden_units: Vec<usize>,
    /// Every hidden layer's activation.
    pub activation: Activation,
    /// The probability of dropping a hidden unit in training.
    pub dropout: f64,
    /// Batch normalisation after each hidden layer.
    pub batch_norm: bool,
}

/// A linear part's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSpec {
    /// The columns it weighs, in name order.
    pub inputs: Vec<String>,
}

/// A hidden layer's activation, as tf.nn names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Exponential linear unit.
    Elu,
    /// Scaled exponential linear unit.
    Selu,
    /// Gaussian error linear unit, exact.
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// `x × sigmoid(x)`.
    Swish,
    /// `max(x, 0.2 x)`.
    LeakyRelu,
    /// None.
    Linear,
}
