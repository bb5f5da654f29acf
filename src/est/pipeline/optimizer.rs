//! The optimizer blocks: which parameters each updates, its update rule and its learning-rate decay.

use serde::{Deserialize, Serialize};

/// Which parameters an optimizer updates: all of them, or one half of a wide & deep model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every variable.
    All,
    /// The DNN part's.
    Dnn,
    /// The linear part's.
    Linear,
}

impl Scope {
    /// The word in checkpoint names (`optimizer/dnn/...`) and summary tags.
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

/// One optimizer block, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    /// The variables it updates.
    pub scope: Scope,
    /// The update rule and its hyper-parameters.
    #[serde(flatten)]
    pub kind: OptimizerKind,
    /// The rate before decay.
    pub learning_rate: f64,
    /// How the rate changes with the global step.
    pub decay: Option<Decay>,
    /// Clip gradients to this global norm.
    pub clip_norm: Option<f64>,
    /// L2 penalty added to the gradient, as torch.optim does.
    pub weight_decay: f64,
    /// Update only the rows of embedding tables (and of linear weights looked up by id) that a
    /// batch touched, and their optimizer state, even where that differs from the dense update
    /// (TF's LazyAdam): Adam's and RMSprop's moments, momentum and weight decay then leave the
    /// other rows alone. Adagrad, FTRL and plain SGD update only those rows anyway, exactly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy: bool,
}

/// An update rule and its hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerKind {
    /// torch.optim.Adagrad.
    Adagrad {
        /// The accumulator's starting value.
        initial_accumulator: f64,
        /// Added to the accumulator's square root.
        epsilon: f64,
    },
    /// torch.optim.Adam.
    Adam {
        /// The first moment's decay.
        beta1: f64,
        /// The second moment's decay.
        beta2: f64,
        /// Added to the second moment's square root.
        epsilon: f64,
        /// Keeps the largest second moment seen (an extra slot).
        amsgrad: bool,
    },
    /// torch.optim.SGD.
    Sgd {
        /// Momentum; above 0 it keeps a buffer.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// torch.optim.RMSprop.
    Rmsprop {
        /// The square average's decay.
        rho: f64,
        /// Momentum; above 0 it keeps a buffer.
        momentum: f64,
        /// Added to the square average's root.
        epsilon: f64,
        /// Divides by the variance rather than the square average (an extra slot).
        centered: bool,
    },
    /// Keras's FTRL (torch has none).
    Ftrl {
        /// The learning rate's power, -0.5 or less.
        learning_rate_power: f64,
        /// The accumulator's starting value.
        initial_accumulator: f64,
        /// L1 regularisation.
        l1: f64,
        /// L2 regularisation.
        l2: f64,
        /// L2 shrinkage on the gradient.
        l2_shrinkage: f64,
        /// Added to the accumulator's root in the denominator.
        beta: f64,
    },
}

impl OptimizerKind {
    /// The words `.est` files use.
    pub const WORDS: [&'static str; 5] = ["adagrad", "adam", "sgd", "rmsprop", "ftrl"];

    /// The word `.est` files use.
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

/// A learning-rate decay, as `tf.keras.optimizers.schedules` computes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decay {
    /// `lr × rate^(step / decay_steps)`.
    Exponential {
        /// The steps over which the rate is multiplied by `decay_rate`.
        decay_steps: u64,
        /// The factor per `decay_steps`.
        decay_rate: f64,
        /// Whether the exponent is floored.
        staircase: bool,
    },
    /// `lr / (1 + rate × step / decay_steps)`.
    InverseTime {
        /// The step scale.
        decay_steps: u64,
        /// The rate of decay.
        decay_rate: f64,
        /// Whether `step / decay_steps` is floored.
        staircase: bool,
    },
    /// From `lr` to `end_learning_rate` along a power curve.
    Polynomial {
        /// The steps to reach the end rate.
        decay_steps: u64,
        /// The rate at the end.
        end_learning_rate: f64,
        /// The curve's power.
        power: f64,
        /// Whether the curve starts again after `decay_steps`.
        cycle: bool,
    },
    /// Cosine decay to `alpha × lr`.
    Cosine {
        /// The steps of the half cosine.
        decay_steps: u64,
        /// The floor, as a fraction of `lr`.
        alpha: f64,
    },
    /// Absolute rates: `values[i]` applies before `boundaries[i]`, the last one after.
    Piecewise {
        /// The steps where the rate changes.
        boundaries: Vec<u64>,
        /// The rates, one more than `boundaries`.
        values: Vec<f64>,
    },
}

impl Decay {
    /// The words `.est` files use.
    pub const WORDS: [&'static str; 5] = ["exponential", "inverse_time", "polynomial", "cosine", "piecewise"];
}
