//! The checked pipeline's vocabulary: what a `.est` file says once every key is verified and
//! every default is explicit. The checker produces these values, the plan holds them, and the
//! readers and the model builder read them; they serialise as `est compile` prints them and as
//! checkpoints store them. A leaf: it imports no other stage.

mod data;
mod features;
mod model;
mod optimizer;
mod run;

pub use data::{is_glob, repeated, BadRows, DataSpec, Files, GLOB};
pub use features::{CategoricalIds, Combiner, Feature, FeatureKind, Normalize};
pub use model::{Activation, DnnSpec, LinearSpec, ModelKind, ModelSpec};
pub use optimizer::{Decay, Optimizer, OptimizerKind, Scope};
pub use run::{
    Cadence, CheckpointSpec, Device, EarlyStopSpec, EvalSpec, Mode, Objective, SummariesSpec, Threads, TrainLength,
    TrainSpec,
};
