//! The optimizer blocks: which parameters each updates, its update rule and its learning-rate decay.

use serde::{Deserialize, Serialize};

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
