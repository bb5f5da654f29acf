//! The syntax tree of a `.est` file: what was written, where, and nothing more.

use crate::span::{Span, Spanned};

/// A parsed file: one pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Ast {
    /// `pipeline NAME`.
    pub name: Spanned<String>,
    /// The blocks, in file order.
    pub items: Vec<Item>,
    /// The whole pipeline.
    pub span: Span,
}

/// One line of a body: `key = value` or a declaration.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `key = value`.
    Entry(Entry),
    /// A block or column.
    Decl(Decl),
}

impl Item {
    /// Where the item is.
    pub fn span(&self) -> Span {
        match self {
            Item::Entry(e) => e.span,
            Item::Decl(d) => d.span,
        }
    }
}

/// `key = value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: Spanned<String>,
    /// The value.
    pub value: Value,
    /// The whole entry.
    pub span: Span,
}

/// `kind name = source { body }`, every part after `kind` optional: a block such as
/// `model dnn_classifier { ... }` or a column such as `bucketized age_b = age { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    /// The first word: a block (`model`) or a column kind (`numeric`).
    pub kind: Spanned<String>,
    /// The name after it.
    pub name: Option<Spanned<String>>,
    /// What follows `=`.
    pub source: Option<Source>,
    /// The braces' contents.
    pub body: Option<Body>,
    /// The whole declaration.
    pub span: Span,
}

/// What a derived column is built from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// One column.
    One(Spanned<String>),
    /// `[a, b, ...]` and where its brackets are.
    List(Vec<Spanned<String>>, Span),
}

impl Source {
    /// Where the source is.
    pub fn span(&self) -> Span {
        match self {
            Source::One(n) => n.span,
            Source::List(_, span) => *span,
        }
    }
}

/// `{ ... }` and where its braces are.
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    /// The items, in file order.
    pub items: Vec<Item>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A value with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// What was written.
    pub kind: ValueKind,
    /// Where.
    pub span: Span,
}

/// The kinds of value a `.est` file writes.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// `10_000`.
    Int(i64),
    /// `0.05`, `1e-3`.
    Float(f64),
    /// `true`, `false`.
    Bool(bool),
    /// `"a"`, unescaped.
    Str(String),
    /// A bare name: `relu`.
    Ident(String),
    /// A duration, in seconds.
    Duration(f64),
    /// `N steps`.
    Steps(u64),
    /// `[a, b]`.
    List(Vec<Value>),
    /// `kind { body }`.
    Object(Spanned<String>, Body),
}

impl ValueKind {
    /// How the checker names this kind of value in "expected X, found Y".
    pub fn describe(&self) -> &'static str {
        match self {
            ValueKind::Int(_) => "an integer",
            ValueKind::Float(_) => "a number",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Str(_) => "a string",
            ValueKind::Ident(_) => "a name",
            ValueKind::Duration(_) => "a duration",
            ValueKind::Steps(_) => "a step count",
            ValueKind::List(_) => "a list",
            ValueKind::Object(..) => "a `kind { ... }` value",
        }
    }
}
