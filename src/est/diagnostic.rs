//! Everything a user wrote wrong in a `.est` file: one `Diagnostic` per mistake, one kind enum
//! for parse and check errors. Rendering lives in `render.rs`.

use crate::span::Span;
use crate::suggestion::suggest;

/// One mistake, where it is, and what to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    pub span: Span,
    pub help: Option<String>,
}

/// What went wrong. Each kind is named after the problem.
#[derive(Clone, Debug, PartialEq)]
pub enum DiagnosticKind {
    /// The text does not follow the grammar.
    Syntax {
        expected: Vec<String>,
        found: String,
    },
    UnknownBlock {
        name: String,
    },
    DuplicateBlock {
        name: String,
        first: Span,
    },
    MissingBlock {
        name: &'static str,
    },
    /// A block written with a name it does not take (`data iris { }`) or without one it needs.
    MalformedBlock {
        block: String,
        problem: String,
    },
    /// An item of the wrong shape for where it stands: a key among columns, a block among keys.
    MisplacedItem {
        expected: &'static str,
        found: &'static str,
        place: String,
    },
    UnknownKey {
        key: String,
        block: String,
    },
    DuplicateKey {
        key: String,
        first: Span,
    },
    MissingKey {
        key: &'static str,
        block: String,
    },
    /// A key this model kind does not take (`hidden_units` on a linear model).
    KeyNotForModel {
        key: String,
        model: String,
    },
    ConflictingKeys {
        key: String,
        other: String,
        other_span: Span,
    },
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A duration-or-steps value written as a bare number.
    MissingUnit {
        key: String,
        number: i64,
    },
    OutOfRange {
        key: String,
        requirement: String,
    },
    EmptyHiddenUnits,
    /// A name that is not one of a fixed set (an activation, a combiner, a device ...).
    UnknownValue {
        key: String,
        value: String,
    },
    UnknownModel {
        name: String,
    },
    UnknownOptimizer {
        name: String,
    },
    UnknownDecay {
        name: String,
    },
    UnknownColumnKind {
        kind: String,
    },
    UnknownColumn {
        name: String,
    },
    DuplicateColumn {
        name: String,
        first: Span,
    },
    InvalidColumnName {
        name: String,
        reason: &'static str,
    },
    /// A derived column built from a column of the wrong kind.
    WrongSourceKind {
        column: String,
        kind: &'static str,
        source: String,
        source_kind: &'static str,
        expected: &'static str,
    },
    TooFewCrossed {
        column: String,
    },
    SparseColumnInDnn {
        name: String,
        kind: &'static str,
    },
    LabelAsFeature {
        name: String,
    },
    CategoricalWithoutBuckets {
        column: String,
    },
    UnsortedBoundaries {
        key: String,
    },
    DuplicateValue {
        key: String,
        value: String,
    },
    ClassCountMismatch {
        n_classes: i64,
        vocabulary: usize,
    },
    MissingDataFile {
        path: String,
    },
    UnreadableDataFile {
        path: String,
        reason: String,
    },
    UnknownDataColumn {
        name: String,
        file: String,
    },
    LabelNotInData {
        label: String,
        file: String,
    },
}

impl Diagnostic {
    pub fn new(kind: DiagnosticKind, span: Span) -> Self {
        Diagnostic { kind, span, help: None }
    }

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
            UnknownDataColumn { name, file } => {
                format!("column `{name}` is not in the header of `{file}`")
            }
            LabelNotInData { label, file } => {
                format!("label column `{label}` is not in the header of `{file}`")
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
            UnknownDataColumn { .. } | LabelNotInData { .. } => "not a column of the data".into(),
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

pub fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
