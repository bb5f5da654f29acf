//! The `data` block: which files, which label, how fields are read.

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `data` block, checked: the files, the label and how fields are read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The training files.
    pub train: Files,
    /// The files evaluation reads, if any.
    pub eval: Option<Files>,
    /// The files prediction reads by default, if any.
    pub predict: Option<Files>,
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

/// Data files as the data block names them: paths and globs (`data/part-*.csv.gz`), read in
/// order, each glob's matches in name order. One entry is written as a plain string, as plans
/// from before lists were written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files(pub Vec<Utf8PathBuf>);

impl Files {
    /// One path or glob.
    pub fn one(path: impl Into<Utf8PathBuf>) -> Files {
        Files(vec![path.into()])
    }

    /// The paths and globs, as written.
    pub fn entries(&self) -> &[Utf8PathBuf] {
        &self.0
    }

    /// The single plain path, when that is all there is.
    pub fn single(&self) -> Option<&Utf8Path> {
        match self.0.as_slice() {
            [p] if !is_glob(p.as_str()) => Some(p),
            _ => None,
        }
    }

    /// Whether `path` is one of the entries or matches one of the globs.
    pub fn names(&self, path: &Utf8Path) -> bool {
        self.0.iter().any(|e| {
            e == path
                || (is_glob(e.as_str())
                    && glob::Pattern::new(e.as_str()).is_ok_and(|p| p.matches_path_with(path.as_std_path(), GLOB)))
        })
    }
}

/// How globs match: `*` stays within a folder, and names starting with `.` need a literal `.`.
pub const GLOB: glob::MatchOptions =
    glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: true };

/// Whether a path is a glob pattern.
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

impl std::fmt::Display for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<&str> = self.0.iter().map(|p| p.as_str()).collect();
        f.write_str(&shown.join(", "))
    }
}

impl Serialize for Files {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Files {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Files, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(Utf8PathBuf),
            Many(Vec<Utf8PathBuf>),
        }
        Ok(match Written::deserialize(d)? {
            Written::One(p) => Files(vec![p]),
            Written::Many(v) => Files(v),
        })
    }
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
