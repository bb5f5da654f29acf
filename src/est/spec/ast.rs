//! The syntax tree of a `.est` file: what was written, where, and nothing more.

use crate::span::{Span, Spanned};

/// A parsed file: one pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Ast {
    pub name: Spanned<String>,
    pub items: Vec<Item>,
    pub span: Span,
}

/// One line of a body: `key = value` or a declaration.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Entry(Entry),
    Decl(Decl),
}

impl Item {
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
    pub key: Spanned<String>,
    pub value: Value,
    pub span: Span,
}

/// `kind name = source { body }`, every part after `kind` optional: a block such as
/// `model dnn_classifier { ... }` or a column such as `bucketized age_b = age { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    pub kind: Spanned<String>,
    pub name: Option<Spanned<String>>,
    pub source: Option<Source>,
    pub body: Option<Body>,
    pub span: Span,
}

/// What a derived column is built from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    One(Spanned<String>),
    List(Vec<Spanned<String>>, Span),
}

impl Source {
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
    pub items: Vec<Item>,
    pub span: Span,
}

/// A value with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Ident(String),
    /// A duration, in seconds.
    Duration(f64),
    /// `N steps`.
    Steps(u64),
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
