//! CSV to typed columns, as the plan describes them: numeric values with defaults filled in,
//! bucket ids for every id-producing column, labels as class ids or values. Every bad field is
//! reported with file, line and column, or skipped and counted when the pipeline says so.
//! No libtorch here: lowering turns a [`Table`] into tensors.
//!
//! A clean file is read the fast way (`fast`), on every core; anything the fast way declines,
//! the careful way (`careful`), which names every error. Both give the same table, bit for bit.
//! Compressed CSV is decompressed as a stream and read the same two ways; Parquet is read
//! column by column (`parquet`). An input of several files is their tables one after another.

pub mod cache;
mod careful;
mod error;
pub mod fast;
pub mod hash;
pub mod order;
pub mod parquet;
pub mod source;
mod stats;
mod table;
mod values;

use camino::Utf8Path;

pub use careful::careful;
pub use error::{DataError, FieldProblem, HeaderProblem};
pub use table::{IdColumn, Labels, NumericBlock, NumericColumn, Stats, Table};
pub use values::Values;

use crate::pipeline::Files;
use crate::plan::Plan;
use source::Format;
use table::derive;

/// What the rows are read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Training or evaluation: every row needs a label.
    Labelled,
    /// Prediction: a label column, if present, is ignored.
    Unlabelled,
}

/// Reads every file `files` names, in order, as one table; the parts must have the same columns.
pub fn load(plan: &Plan, files: &Files, purpose: Purpose) -> Result<Table, DataError> {
    let paths = source::expand(files)?;
    let mut parts = paths.iter();
    let Some(first) = parts.next() else { return Err(DataError::NoMatch { pattern: files.to_string().into() }) };
    let mut table = load_file(plan, first, purpose)?;
    if paths.len() > 1 {
        let columns = |path: &Utf8Path| {
            let d = &plan.data;
            source::column_names(path, d.delimiter, d.header, d.columns.as_deref()).map_err(|reason| {
                DataError::Header { path: path.to_owned(), problem: HeaderProblem::Unreadable(reason) }
            })
        };
        let names = columns(first)?;
        for path in parts {
            let theirs = columns(path)?;
            if theirs != names {
                let difference = difference(&names, &theirs);
                return Err(DataError::PartsDisagree { first: first.clone(), path: path.clone(), difference });
            }
            table.append(load_file(plan, path, purpose)?);
        }
    }
    Ok(table)
}

/// Reads one file as the plan's data block describes: plain and compressed CSV the fast way
/// when it can (the careful way, which names every bad field, otherwise), Parquet by its columns.
pub fn load_file(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Result<Table, DataError> {
    load_cached(plan, path, purpose, cache::Cache::current().as_ref())
}

/// As `load_file`, with `cache` for the parsed table (none: parse).
pub fn load_cached(
    plan: &Plan,
    path: &Utf8Path,
    purpose: Purpose,
    cache: Option<&cache::Cache>,
) -> Result<Table, DataError> {
    let entry = cache.and_then(|c| c.entry(plan, path, purpose));
    let data_crc = match entry.as_ref().map(cache::Entry::read) {
        Some(Ok(table)) => return Ok(table),
        Some(Err(crc)) => crc,
        None => None,
    };
    let table = parse(plan, path, purpose)?;
    if let Some(entry) = entry {
        entry.write(&table, data_crc);
    }
    Ok(table)
}

fn parse(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Result<Table, DataError> {
    match Format::of(path) {
        Format::Csv => {
            if let Some(table) = fast::load(plan, path, purpose) {
                return Ok(table);
            }
            careful(plan, path, purpose)
        }
        Format::Gzip | Format::Zstd => {
            let text = source::decompressed(path)?;
            if let Some(table) = fast::load_bytes(plan, &text, purpose) {
                return Ok(table);
            }
            careful::careful_text(plan, path, &text, purpose)
        }
        Format::Parquet => parquet::load(plan, path, purpose),
    }
}

/// How two parts' columns differ, in words.
pub(crate) fn difference(first: &[String], other: &[String]) -> String {
    let lacks: Vec<&str> = first.iter().filter(|n| !other.contains(n)).map(String::as_str).collect();
    let extra: Vec<&str> = other.iter().filter(|n| !first.contains(n)).map(String::as_str).collect();
    let list = |names: &[&str]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    match (lacks.is_empty(), extra.is_empty()) {
        (false, false) => format!("it lacks {} and has {}", list(&lacks), list(&extra)),
        (false, true) => format!("it lacks {}", list(&lacks)),
        (true, false) => format!("it has {} besides", list(&extra)),
        (true, true) => "the same columns in another order".to_string(),
    }
}

/// The cores this process may use, asked once: the answer reads cgroup files each time.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
