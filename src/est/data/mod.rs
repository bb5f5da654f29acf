//! CSV to typed columns, as the plan describes them: numeric values with defaults filled in,
//! bucket ids for every id-producing column, labels as class ids or values. Every bad field is
//! reported with file, line and column, or skipped and counted when the pipeline says so.
//! No libtorch here: lowering turns a [`Table`] into tensors.
//!
//! A clean file is read the fast way (`fast`), on every core; anything the fast way declines,
//! the careful way (`careful`), which names every error. Both give the same table, bit for bit.

mod careful;
mod error;
pub mod fast;
pub mod hash;
pub mod order;
mod stats;
mod table;

use camino::Utf8Path;

pub use careful::careful;
pub use error::{DataError, FieldProblem, HeaderProblem};
pub use table::{IdColumn, Labels, NumericBlock, NumericColumn, Stats, Table};

use crate::plan::Plan;
use table::derive;

/// What the rows are read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Training or evaluation: every row needs a label.
    Labelled,
    /// Prediction: a label column, if present, is ignored.
    Unlabelled,
}

/// Reads `path` as the plan's data block describes: clean files the fast way, anything else
/// (and any file the fast way stumbles on) the careful way, which names every bad field.
pub fn load(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Result<Table, DataError> {
    if let Some(table) = fast::load(plan, path, purpose) {
        return Ok(table);
    }
    careful(plan, path, purpose)
}

/// The cores this process may use, asked once: the answer reads cgroup files each time.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
