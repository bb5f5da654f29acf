//! What can be wrong with a data file, as values: the file, the header, or one field at
//! `file:line:column`, each problem a variant a caller can match on.

use camino::Utf8PathBuf;

use crate::diagnostic::plural;

/// Why a data file could not be read as the plan says.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read at all.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: Utf8PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The file has no header row.
    #[error("`{path}` is empty: it has no header row")]
    Empty {
        /// The file.
        path: Utf8PathBuf,
    },
    /// The file has a header and no rows.
    #[error("`{path}` has no rows")]
    NoRows {
        /// The file.
        path: Utf8PathBuf,
    },
    /// The header does not name the columns the plan reads.
    #[error("`{path}`: {problem}")]
    Header {
        /// The file.
        path: Utf8PathBuf,
        /// What is wrong with it.
        problem: HeaderProblem,
    },
    /// One field is wrong.
    #[error("{path}:{line}:{column}: {problem}")]
    Field {
        /// The file.
        path: Utf8PathBuf,
        /// The 1-based line.
        line: u64,
        /// The 1-based character column where the field starts.
        column: usize,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// A glob that matches no file.
    #[error("no file matches `{pattern}`")]
    NoMatch {
        /// The glob, as resolved.
        pattern: Utf8PathBuf,
    },
    /// A compressed file that does not decompress.
    #[error("`{path}` is not a valid {format} file: {reason} (after line {line} of its text)")]
    Decompress {
        /// The file.
        path: Utf8PathBuf,
        /// `gzip` or `zstd`.
        format: &'static str,
        /// The decoder's reason.
        reason: String,
        /// The lines of text read before the fault.
        line: u64,
    },
    /// A Parquet file that cannot be read, or a part of it.
    #[error("`{path}`{}: {reason}", row_group.map_or(String::new(), |g| format!(", row group {g}")))]
    Parquet {
        /// The file.
        path: Utf8PathBuf,
        /// The 0-based row group, where the fault lies in one.
        row_group: Option<usize>,
        /// The Parquet reader's reason.
        reason: String,
    },
    /// A Parquet column of a type the feature reading it cannot take.
    #[error("`{path}`: column `{column}` is {found}, which {reader} cannot read; {expected}")]
    ColumnType {
        /// The file.
        path: Utf8PathBuf,
        /// The column.
        column: String,
        /// Its Parquet (Arrow) type.
        found: String,
        /// What reads it: "numeric column `x`", "the label", ...
        reader: String,
        /// The types that would do, as the end of a sentence.
        expected: &'static str,
    },
    /// A bad value in a Parquet file.
    #[error("`{path}`, row group {row_group}, row {row}: {problem}")]
    Value {
        /// The file.
        path: Utf8PathBuf,
        /// The 0-based row group.
        row_group: usize,
        /// The 1-based row of the file.
        row: u64,
        /// What is wrong with it.
        problem: FieldProblem,
    },
    /// Parts of one input whose columns differ.
    #[error("`{path}` has other columns than `{first}`, the first file of the same input: {difference}")]
    PartsDisagree {
        /// The first part.
        first: Utf8PathBuf,
        /// The part that differs.
        path: Utf8PathBuf,
        /// How, in words.
        difference: String,
    },
    /// `bad_rows = skip` skipped every row.
    #[error("every row of `{path}` is bad ({skipped} skipped); the first: {first}")]
    AllRowsBad {
        /// The file.
        path: Utf8PathBuf,
        /// Rows skipped.
        skipped: usize,
        /// Why the first was.
        first: Box<DataError>,
    },
}

/// What is wrong with a header.
#[derive(Debug, thiserror::Error)]
pub enum HeaderProblem {
    /// A name appears twice, so the column it means is ambiguous.
    #[error("column `{0}` appears twice in the header")]
    Repeated(String),
    /// A column the plan reads is not there.
    #[error("there is no column `{name}`{}", did_you_mean(.suggestion))]
    NoColumn {
        /// The column the plan names.
        name: String,
        /// The header's closest name.
        suggestion: Option<String>,
    },
    /// The csv crate could not read it.
    #[error("{0}")]
    Csv(csv::Error),
    /// The columns could not be read, for the reason given.
    #[error("{0}")]
    Unreadable(String),
}

/// What is wrong with one field. Values are quoted as `shown` cuts them.
#[derive(Debug, thiserror::Error)]
pub enum FieldProblem {
    /// The header's column name (1-based) is not UTF-8.
    #[error("the name of column {0} is not valid UTF-8")]
    NameNotUtf8(usize),
    /// A row with another number of fields than the header.
    #[error("expected {expected} {}, found {found}", plural(*.expected, "field", "fields"))]
    FieldCount {
        /// The header's fields.
        expected: usize,
        /// The row's.
        found: usize,
    },
    /// A field that is not UTF-8, in the column named.
    #[error("`{0}` is not valid UTF-8")]
    NotUtf8(String),
    /// A missing value where the feature has no default.
    #[error("`{column}` is missing and column `{feature}` has no `default`")]
    MissingWithoutDefault {
        /// The data column.
        column: String,
        /// The feature that reads it.
        feature: String,
    },
    /// An empty field where `""` is not a missing marker.
    #[error("`{column}` is empty; list \"\" in `missing` and give `{feature}` a `default` to allow it")]
    Empty {
        /// The data column.
        column: String,
        /// The feature that reads it.
        feature: String,
    },
    /// A field of a numeric column of `shape = N` without N numbers.
    #[error("`{column}` has {found} values, expected {expected}")]
    ValueCount {
        /// The data column.
        column: String,
        /// The numbers the field holds.
        found: usize,
        /// The column's shape.
        expected: usize,
    },
    /// A field that is not a finite number.
    #[error("`{column}` must be a number, found `{found}`")]
    NotANumber {
        /// The data column.
        column: String,
        /// The field.
        found: String,
    },
    /// A categorical value outside a vocabulary without `oov_buckets`.
    #[error(
        "column `{feature}`: `{value}` is not in the vocabulary and there are no `oov_buckets`{}",
        did_you_mean(.suggestion)
    )]
    NotInVocabulary {
        /// The feature.
        feature: String,
        /// The value.
        value: String,
        /// The vocabulary's closest entry.
        suggestion: Option<String>,
    },
    /// An `identity` column's value that is not an id.
    #[error("column `{feature}`: `{value}` is not an id in 0..{max}")]
    NotAnId {
        /// The feature.
        feature: String,
        /// The value.
        value: String,
        /// The largest id.
        max: u64,
    },
    /// A row without its label.
    #[error("the label `{0}` is missing")]
    LabelMissing(String),
    /// A regression label that is not a finite number.
    #[error("the label `{label}` must be a number, found `{found}`")]
    LabelNotANumber {
        /// The label column.
        label: String,
        /// The field.
        found: String,
    },
    /// A class name outside `label_vocabulary`.
    #[error("label `{found}` is not in `label_vocabulary`{}", did_you_mean(.suggestion))]
    LabelNotInVocabulary {
        /// The field.
        found: String,
        /// The vocabulary's closest entry.
        suggestion: Option<String>,
    },
    /// A class id outside `0..n_classes`.
    #[error("label {class} is outside 0..{} (`n_classes` is {n_classes})", .n_classes - 1)]
    LabelOutOfRange {
        /// The id.
        class: i64,
        /// The head's classes.
        n_classes: i64,
    },
    /// A class label that is not an id, without `label_vocabulary`.
    #[error("label `{0}` is not a class id; give class names in `label_vocabulary`")]
    LabelNotAClassId(String),
    /// A row without its weight.
    #[error("the weight `{column}` is missing")]
    WeightMissing {
        /// The weight column.
        column: String,
    },
    /// A weight that is not a finite number.
    #[error("the weight `{column}` must be a number, found `{found}`")]
    WeightNotANumber {
        /// The weight column.
        column: String,
        /// The field.
        found: String,
    },
    /// A negative weight, which would push the model away from the example's label.
    #[error("the weight `{column}` must not be negative, found `{found}`")]
    WeightNegative {
        /// The weight column.
        column: String,
        /// The field.
        found: String,
    },
    /// The csv crate could not read the record.
    #[error("{0}")]
    Csv(csv::Error),
}

/// `; did you mean `x`?`, or nothing.
fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map_or(String::new(), |s| format!("; did you mean `{s}`?"))
}

/// A field as an error message quotes it: long ones cut short.
pub fn shown(value: &str) -> String {
    const LIMIT: usize = 40;
    match value.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
        None => value.to_string(),
    }
}
