//! The `data` block: which files, which label, how fields are read.

use camino::Utf8PathBuf;
use serde::{Deserialize, Serialize};

/// The `data` block, checked: the files, the label and how fields are read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The training file.
    pub train: Utf8PathBuf,
    /// The file evaluation reads, if any.
    pub eval: Option<Utf8PathBuf>,
    /// The file prediction reads by default, if any.
    pub predict: Option<Utf8PathBuf>,
    /// The label's column.
    pub label: String,
    /// A numeric column weighting each example's loss (tf.estimator's `weight_column`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// Class names, in class-id order; without them labels are ids.
    pub label_vocabulary: Option<Vec<String>>,
    /// Field values that mean "missing", e.g. `NA`.
    pub missing: Vec<String>,
    /// The field separator.
    pub delimiter: char,
    /// Whether the first row names the columns.
    pub header: bool,
    /// Column names given in the file instead of (or over) the header.
    pub columns: Option<Vec<String>>,
    /// What a bad row does.
    pub bad_rows: BadRows,
}

/// What a row with a bad field does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRows {
    /// Stop at the first bad row, naming file, line and column.
    Error,
    /// Skip bad rows and report how many were skipped.
    Skip,
}

/// The first name a list of column names repeats, if any: a header that repeats a name is
/// ambiguous, so the checker and both readers refuse it.
pub fn repeated(names: &[String]) -> Option<&str> {
    names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)).map(|(_, n)| n.as_str())
}
