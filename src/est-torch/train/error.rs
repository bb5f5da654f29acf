//! What can stop a run, an evaluation or a prediction. Each cause arrives as a value (data,
//! checkpoint, event file, libtorch, model building, the written-out step), so callers can match
//! on it; the messages say what to do where est can tell.

use camino::Utf8PathBuf;

use super::direct::StepError;
use crate::lower::{LowerError, TorchError};

/// Why training, evaluation or prediction stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A data file could not be read as the plan says.
    #[error(transparent)]
    Data(#[from] est::data::DataError),
    /// model_dir could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] est::checkpoint::CheckpointError),
    /// An event file could not be written.
    #[error(transparent)]
    Events(#[from] est::events::EventError),
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] TorchError),
    /// The model could not be built from the plan, or its inputs from the data.
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// The written-out training step met a batch or model it cannot take.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The latest checkpoint belongs to another model.
    #[error(
        "the latest checkpoint in `{dir}` was trained with another model (fingerprint {old}, this pipeline has {new})"
    )]
    IncompatibleModel {
        /// The model_dir.
        dir: Utf8PathBuf,
        /// The checkpoint's model fingerprint.
        old: String,
        /// The plan's.
        new: String,
    },
    /// The latest checkpoint holds another optimizer's state.
    #[error(
        "the latest checkpoint in `{dir}` holds state of another optimizer (fingerprint {old}, this pipeline has {new})"
    )]
    IncompatibleOptimizer {
        /// The model_dir.
        dir: Utf8PathBuf,
        /// The checkpoint's optimizer fingerprint.
        old: String,
        /// The plan's.
        new: String,
    },
    /// A tensor in a checkpoint has another shape than the plan's variable.
    #[error("`{name}` in `{path}` has shape {found:?}, the plan says {expected:?}")]
    ShapeMismatch {
        /// The checkpoint file.
        path: Utf8PathBuf,
        /// The tensor.
        name: String,
        /// Its shape in the file.
        found: Vec<usize>,
        /// The plan's.
        expected: Vec<usize>,
    },
    /// A checkpoint lacks a tensor the plan needs.
    #[error("`{path}` lacks the tensor `{name}`")]
    MissingTensor {
        /// The checkpoint file.
        path: Utf8PathBuf,
        /// The tensor.
        name: String,
    },
    /// Evaluation or prediction found nothing to restore.
    #[error("no checkpoint in `{dir}`: train first with `est train`")]
    NoCheckpoint {
        /// The model_dir.
        dir: Utf8PathBuf,
    },
    /// Evaluation was asked for without eval data.
    #[error("the pipeline names no eval data: set `eval` in `data` or pass --data")]
    NoEvalData,
    /// The plan's device is not on this machine.
    #[error("device `{device}`: {reason}")]
    Device {
        /// The device as the plan names it.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The loss stopped being a number.
    #[error("the loss was {value} at step {step}; training stopped, and nothing after the checkpoint of step {last_good} was saved")]
    NonFiniteLoss {
        /// The step whose loss it was.
        step: u64,
        /// The loss.
        value: f64,
        /// The last checkpoint written, which is the state to go back to.
        last_good: u64,
    },
    /// A weight or optimizer slot stopped being a number, though the loss was finite.
    #[error("`{tensor}` holds {value} at step {step}; training stopped, and nothing after the checkpoint of step {last_good} was saved")]
    NonFiniteState {
        /// The step that was to be saved.
        step: u64,
        /// The tensor.
        tensor: String,
        /// The value found in it.
        value: f32,
        /// The last checkpoint written.
        last_good: u64,
    },
    /// The thread a run trained on ended without a result.
    #[error("the training thread stopped")]
    ThreadStopped,
}

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        TrainError::Torch(TorchError(e))
    }
}
