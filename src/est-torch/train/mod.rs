//! Plan to trained checkpoints: restores the latest checkpoint in model_dir (weights, optimizer
//! state, data order, global step), trains, evaluates and predicts. A resumed run continues
//! bit for bit where the previous one stopped.
//!
//! `run` locks model_dir and hands over to the `Trainer`, whose verbs (`step`, `maybe_log`,
//! `maybe_save`, `maybe_evaluate`, `finish`) are the run's whole life; a `Session` is a model
//! with its optimizer state and position, shared with `evaluate` and `predict`.

pub mod device;
pub mod direct;
mod error;
pub mod evaluate;
pub mod loss;
pub mod optim;
mod options;
pub mod predict;
mod saver;
pub mod schedule;
pub mod session;
mod snapshot;
mod step;
pub mod summaries;
mod trainer;

use std::sync::atomic::AtomicBool;

use camino::{Utf8Path, Utf8PathBuf};
use est::checkpoint::Store;
use est::plan::Plan;

pub use error::TrainError;
pub use evaluate::Metrics;
pub use loss::batch_loss;
pub use options::{Progress, RunOptions, Start, Summary};
pub use session::Session;
pub use trainer::Trainer;

/// Trains as the plan says, from the latest checkpoint in model_dir if there is one. A second
/// writer fails at once; a run that fails before writing anything leaves no folder behind.
pub fn run(
    plan: &Plan,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Summary, TrainError> {
    let dir = opts.model_dir(plan);
    // The folders this run creates, innermost first.
    let created: Vec<Utf8PathBuf> =
        dir.ancestors().take_while(|d| !d.as_str().is_empty() && !d.exists()).map(Utf8Path::to_owned).collect();
    let store = Store::new(&dir);
    // Before any data is read.
    let lock = store.lock()?;
    let result = trainer::train(plan, opts, progress, stop, &store);
    drop(lock);
    if result.is_err() && !created.is_empty() {
        // A folder that holds anything stays.
        let _ = std::fs::remove_file(dir.join(".lock"));
        for folder in &created {
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
        }
    }
    result
}
