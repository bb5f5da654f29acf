//! Everything a user wrote wrong in a `.est` file: one `Diagnostic` per mistake, one kind enum
//! for parse and check errors. Rendering lives in `render.rs`.

use crate::span::Span;
use crate::suggestion::suggest;

/// One mistake, where it is, and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// What is wrong.
    pub kind: DiagnosticKind,
    /// Where, in the file's bytes.
    pub span: Span,
    /// What to do, when est can tell.
    pub help: Option<String>,
}

/// What went wrong. Each kind is named after the problem.
#[derive(Clone, Debug, PartialEq)]
pub enum DiagnosticKind {
    /// The text does not follow the grammar.
    Syntax {
        /// What the grammar allowed there.
        expected: Vec<String>,
        /// What was there instead.
        found: String,
    },
    /// A block est does not know.
    UnknownBlock {
        /// The block as written.
        name: String,
    },
    /// A block written twice.
    DuplicateBlock {
        /// The block.
        name: String,
        /// Where it was first written.
        first: Span,
    },
    /// A block the pipeline needs and lacks.
    MissingBlock {
        /// The block.
        name: &'static str,
    },
    /// A block written with a name it does not take (`data iris { }`) or without one it needs.
    MalformedBlock {
        /// The block.
        block: String,
        /// What is wrong, as the end of a sentence ("takes no name").
        problem: String,
    },
    /// An item of the wrong shape for where it stands: a key among columns, a block among keys.
    MisplacedItem {
        /// What belongs there.
        expected: &'static str,
        /// What was written.
        found: &'static str,
        /// Where it stands.
        place: String,
    },
    /// A key the block does not take.
    UnknownKey {
        /// The key as written.
        key: String,
        /// The block it is in.
        block: String,
    },
    /// A key set twice in one block.
    DuplicateKey {
        /// The key.
        key: String,
        /// Where it was first set.
        first: Span,
    },
    /// A key the block needs and lacks.
    MissingKey {
        /// The key.
        key: &'static str,
        /// The block.
        block: String,
    },
    /// A key this model kind does not take (`hidden_units` on a linear model).
    KeyNotForModel {
        /// The key.
        key: String,
        /// The model kind.
        model: String,
    },
    /// Two keys of which only one may be set.
    ConflictingKeys {
        /// The key set here.
        key: String,
        /// The key it conflicts with.
        other: String,
        /// Where that one is set.
        other_span: Span,
    },
    /// A value of the wrong type.
    WrongType {
        /// The key.
        key: String,
        /// The type it takes, as prose ("a number").
        expected: &'static str,
        /// The type written.
        found: &'static str,
    },
    /// A duration-or-steps value written as a bare number.
    MissingUnit {
        /// The key.
        key: String,
        /// The number written.
        number: i64,
    },
    /// A number outside what the key allows.
    OutOfRange {
        /// The key.
        key: String,
        /// What it must be, as the end of a sentence ("must be at least 1").
        requirement: String,
    },
    /// `hidden_units = []`.
    EmptyHiddenUnits,
    /// A name that is not one of a fixed set (an activation, a combiner, a device ...).
    UnknownValue {
        /// The key.
        key: String,
        /// The value written.
        value: String,
    },
    /// A model kind est does not know.
    UnknownModel {
        /// The kind written.
        name: String,
    },
    /// An optimizer kind est does not know.
    UnknownOptimizer {
        /// The kind written.
        name: String,
    },
    /// A learning-rate decay est does not know.
    UnknownDecay {
        /// The kind written.
        name: String,
    },
    /// A feature column kind est does not know.
    UnknownColumnKind {
        /// The kind written.
        kind: String,
    },
    /// A reference to a column that is not declared.
    UnknownColumn {
        /// The name referred to.
        name: String,
    },
    /// A column declared twice.
    DuplicateColumn {
        /// The column.
        name: String,
        /// Where it was first declared.
        first: Span,
    },
    /// A column name est cannot use.
    InvalidColumnName {
        /// The name.
        name: String,
        /// Why, as the end of a sentence.
        reason: &'static str,
    },
    /// A derived column built from a column of the wrong kind.
    WrongSourceKind {
        /// The derived column.
        column: String,
        /// Its kind.
        kind: &'static str,
        /// The column it is built from.
        source: String,
        /// That column's kind.
        source_kind: &'static str,
        /// The kinds it may be built from.
        expected: &'static str,
    },
    /// A crossed column of fewer than two columns.
    TooFewCrossed {
        /// The crossed column.
        column: String,
    },
    /// A categorical or crossed column fed to a DNN without `embedding` or `indicator`.
    SparseColumnInDnn {
        /// The column.
        name: String,
        /// Its kind.
        kind: &'static str,
    },
    /// The label column also declared as a feature.
    LabelAsFeature {
        /// The label.
        name: String,
    },
    /// A categorical column with no vocabulary, hash buckets or identity.
    CategoricalWithoutBuckets {
        /// The column.
        column: String,
    },
    /// Bucket boundaries that do not increase strictly.
    UnsortedBoundaries {
        /// The key.
        key: String,
    },
    /// A list that repeats a value it must hold once.
    DuplicateValue {
        /// The key.
        key: String,
        /// The repeated value, quoted.
        value: String,
    },
    /// `n_classes` disagreeing with the size of `label_vocabulary`.
    ClassCountMismatch {
        /// `n_classes` as written.
        n_classes: i64,
        /// The size of `label_vocabulary`.
        vocabulary: usize,
    },
    /// A data file that does not exist.
    MissingDataFile {
        /// The path, resolved against the file's folder.
        path: String,
    },
    /// A data file whose header cannot be read.
    UnreadableDataFile {
        /// The path.
        path: String,
        /// The system's or the csv reader's reason.
        reason: String,
    },
    /// A glob that matches no data file.
    NoMatchingDataFile {
        /// The glob, resolved against the file's folder.
        pattern: String,
    },
    /// Two files of one input with other columns.
    DataPartsDisagree {
        /// The first file.
        first: String,
        /// The file that differs.
        path: String,
        /// How, in words.
        difference: String,
    },
    /// A Parquet column of a type the feature, label or weight reading it cannot take.
    ColumnTypeMismatch {
        /// The column.
        column: String,
        /// The file.
        file: String,
        /// Its type.
        found: String,
        /// What reads it: "numeric column `x`", "the label".
        reader: String,
        /// The types that would do, as the end of a sentence.
        expected: &'static str,
    },
    /// A column the data file's header does not have.
    UnknownDataColumn {
        /// The column.
        name: String,
        /// The data file.
        file: String,
    },
    /// A block that acts on evaluations during training, in a pipeline that makes none.
    NeedsEvaluation {
        /// The block.
        block: &'static str,
        /// What the pipeline lacks, as the end of a sentence.
        missing: &'static str,
    },
    /// A label the data file's header does not have.
    LabelNotInData {
        /// The label.
        label: String,
        /// The data file.
        file: String,
    },
}

impl Diagnostic {
    /// A mistake without help.
    pub fn new(kind: DiagnosticKind, span: Span) -> Self {
        Diagnostic { kind, span, help: None }
    }

    /// The same mistake, with what to do about it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean `x`?" when one candidate is close to `word`.
    pub fn suggesting<'a>(self, word: &str, candidates: impl IntoIterator<Item = &'a str> + Clone) -> Self {
        match suggest(word, candidates.clone()) {
            Some(best) => self.with_help(format!("did you mean `{best}`?")),
            None => {
                let all: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
                if all.is_empty() {
                    self
                } else {
                    self.with_help(format!("expected one of {}", list(&all, "or")))
                }
            }
        }
    }

    /// The one-line headline.
    pub fn message(&self) -> String {
        use DiagnosticKind::*;
        match &self.kind {
            Syntax { expected, found } => {
                if expected.is_empty() {
                    format!("unexpected {found}")
                } else {
                    format!("expected {}, found {found}", list(expected, "or"))
                }
            }
            UnknownBlock { name } => format!("unknown block `{name}`"),
            DuplicateBlock { name, .. } => format!("block `{name}` is defined twice"),
            MissingBlock { name } => format!("the pipeline has no `{name}` block"),
            MalformedBlock { block, problem } => format!("block `{block}` {problem}"),
            MisplacedItem { expected, found, place } => format!("expected {expected} in {place}, found {found}"),
            UnknownKey { key, block } => format!("unknown key `{key}` in `{block}`"),
            DuplicateKey { key, .. } => format!("key `{key}` is set twice"),
            MissingKey { key, block } => format!("`{block}` needs `{key}`"),
            KeyNotForModel { key, model } => format!("`{key}` does not apply to a `{model}` model"),
            ConflictingKeys { key, other, .. } => {
                format!("`{key}` and `{other}` cannot both be set")
            }
            WrongType { key, expected, found } => format!("`{key}` must be {expected}, found {found}"),
            MissingUnit { key, .. } => format!("`{key}` needs a unit"),
            OutOfRange { key, requirement } => format!("`{key}` {requirement}"),
            EmptyHiddenUnits => "`hidden_units` is empty".to_string(),
            UnknownValue { key, value } => format!("unknown `{key}` value `{value}`"),
            UnknownModel { name } => format!("unknown model `{name}`"),
            UnknownOptimizer { name } => format!("unknown optimizer `{name}`"),
            UnknownDecay { name } => format!("unknown learning-rate decay `{name}`"),
            UnknownColumnKind { kind } => format!("unknown column kind `{kind}`"),
            UnknownColumn { name } => format!("column `{name}` is not defined"),
            DuplicateColumn { name, .. } => format!("column `{name}` is defined twice"),
            InvalidColumnName { name, reason } => format!("column name `{name}` {reason}"),
            WrongSourceKind { column, kind, source, source_kind, .. } => {
                format!("{kind} column `{column}` cannot be built from {source_kind} column `{source}`")
            }
            TooFewCrossed { column } => {
                format!("crossed column `{column}` needs at least two columns")
            }
            SparseColumnInDnn { name, kind } => {
                format!("{kind} column `{name}` cannot feed a DNN directly")
            }
            LabelAsFeature { name } => format!("the label `{name}` is also used as a feature"),
            CategoricalWithoutBuckets { column } => {
                format!("categorical column `{column}` does not say how to map values to ids")
            }
            UnsortedBoundaries { key } => format!("`{key}` must be strictly increasing"),
            DuplicateValue { key, value } => format!("`{key}` lists {value} twice"),
            ClassCountMismatch { n_classes, vocabulary } => format!(
                "`n_classes` is {n_classes} but `label_vocabulary` has {vocabulary} {}",
                plural(*vocabulary, "entry", "entries")
            ),
            MissingDataFile { path } => format!("data file `{path}` does not exist"),
            UnreadableDataFile { path, reason } => {
                format!("cannot read data file `{path}`: {reason}")
            }
            NoMatchingDataFile { pattern } => format!("no data file matches `{pattern}`"),
            DataPartsDisagree { first, path, difference } => {
                format!("`{path}` has other columns than `{first}`, the first file of the same input: {difference}")
            }
            ColumnTypeMismatch { column, file, found, reader, expected } => {
                format!("column `{column}` of `{file}` is {found}, which {reader} cannot read; {expected}")
            }
            UnknownDataColumn { name, file } => {
                format!("column `{name}` is not in the header of `{file}`")
            }
            LabelNotInData { label, file } => {
                format!("label column `{label}` is not in the header of `{file}`")
            }
            NeedsEvaluation { block, missing } => {
                format!("`{block}` needs evaluations during training, but {missing}")
            }
        }
    }

    /// The text under the underlined span.
    pub fn label(&self) -> String {
        use DiagnosticKind::*;
        match &self.kind {
            Syntax { expected, .. } if expected.len() == 1 => format!("expected {}", expected[0]),
            Syntax { .. } => "unexpected here".into(),
            UnknownBlock { .. } => "not a block of a pipeline".into(),
            DuplicateBlock { .. } | DuplicateKey { .. } | DuplicateColumn { .. } => "defined again here".into(),
            MissingBlock { .. } => "in this pipeline".into(),
            MissingKey { .. } => "in this block".into(),
            MalformedBlock { .. } | MisplacedItem { .. } => "here".into(),
            UnknownKey { .. } => "unknown key".into(),
            KeyNotForModel { .. } => "not used by this model".into(),
            ConflictingKeys { .. } => "second one set here".into(),
            WrongType { expected, .. } => format!("expected {expected}"),
            MissingUnit { .. } => "a number with no unit".into(),
            OutOfRange { .. } | EmptyHiddenUnits => "out of range".into(),
            UnknownValue { .. } | UnknownModel { .. } | UnknownOptimizer { .. } | UnknownDecay { .. } => {
                "not known".into()
            }
            UnknownColumnKind { .. } => "not a column kind".into(),
            UnknownColumn { .. } => "not defined in `features`".into(),
            InvalidColumnName { .. } => "invalid name".into(),
            WrongSourceKind { expected, .. } => format!("expected {expected}"),
            TooFewCrossed { .. } => "crosses fewer than two columns".into(),
            SparseColumnInDnn { .. } => "sparse column".into(),
            LabelAsFeature { .. } => "the label".into(),
            CategoricalWithoutBuckets { .. } => "no vocabulary, hash_buckets or identity".into(),
            UnsortedBoundaries { .. } => "not increasing".into(),
            DuplicateValue { .. } => "repeated".into(),
            ClassCountMismatch { .. } => "class count".into(),
            MissingDataFile { .. } => "no such file".into(),
            UnreadableDataFile { .. } => "unreadable".into(),
            NoMatchingDataFile { .. } => "matches no file".into(),
            DataPartsDisagree { .. } => "parts disagree".into(),
            ColumnTypeMismatch { .. } => "wrong column type".into(),
            UnknownDataColumn { .. } | LabelNotInData { .. } => "not a column of the data".into(),
            NeedsEvaluation { .. } => "nothing to watch".into(),
        }
    }

    /// Secondary spans worth showing: where the first definition or the other key is.
    pub fn related(&self) -> Option<(Span, &'static str)> {
        use DiagnosticKind::*;
        match &self.kind {
            DuplicateBlock { first, .. } | DuplicateKey { first, .. } | DuplicateColumn { first, .. } => {
                Some((*first, "first defined here"))
            }
            ConflictingKeys { other_span, .. } => Some((*other_span, "first one set here")),
            _ => None,
        }
    }
}

/// `a`, `a or b`, `a, b or c`.
pub fn list(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// `one` for one, `many` otherwise.
pub fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
