//! Reading `key = value` entries of one body with types: unknown and repeated keys are reported
//! once, each typed read reports a wrong type, and every value's span is recorded under its key.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::span::{Span, Spanned};
use crate::spec::{Decl, Entry, Item, Value, ValueKind};

/// Where each checked key was written, by its dotted key (`model.hidden_units`).
pub type SpanMap = BTreeMap<String, Span>;

/// Diagnostics and spans collected while checking.
#[derive(Default)]
pub struct Ctx {
    pub diagnostics: Vec<Diagnostic>,
    pub spans: SpanMap,
}

impl Ctx {
    pub fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn error(&mut self, kind: DiagnosticKind, span: Span) {
        self.diagnostics.push(Diagnostic::new(kind, span));
    }
}

/// The entries of one body, checked against the keys it allows.
pub struct Fields<'a> {
    /// The dotted prefix for spans and messages: `model`, `features.age`.
    pub path: String,
    entries: BTreeMap<&'a str, &'a Entry>,
    /// Allowed keys that an unknown key looked like a typo of.
    typos: Vec<&'static str>,
    /// The span to point at when a required key is missing.
    pub header: Span,
}

/// How a key is described in messages and recorded in spans.
pub fn dotted(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Fields<'a> {
    /// Takes the entries of `items`, reporting declarations where only keys belong, unknown keys
    /// (with a suggestion among `allowed`, or `elsewhere`'s note when the key belongs to a sibling
    /// kind) and keys set twice.
    pub fn new(
        ctx: &mut Ctx,
        path: &str,
        display: &str,
        header: Span,
        items: &'a [Item],
        allowed: &[&'static str],
        elsewhere: &dyn Fn(&str) -> Option<String>,
    ) -> Fields<'a> {
        let mut entries: BTreeMap<&'a str, &'a Entry> = BTreeMap::new();
        let mut typos = Vec::new();
        for item in items {
            match item {
                Item::Decl(decl) => misplaced_decl(ctx, decl, display),
                Item::Entry(entry) => {
                    let key = entry.key.node.as_str();
                    if !allowed.contains(&key) {
                        let diagnostic = Diagnostic::new(
                            DiagnosticKind::UnknownKey { key: key.to_string(), block: display.to_string() },
                            entry.key.span,
                        );
                        if let Some(meant) = crate::suggestion::suggest(key, allowed.iter().copied()) {
                            typos.push(meant);
                        }
                        ctx.report(match elsewhere(key) {
                            Some(note) => diagnostic.with_help(note),
                            None => diagnostic.suggesting(key, allowed.iter().copied()),
                        });
                    } else if let Some(first) = entries.get(key) {
                        ctx.error(
                            DiagnosticKind::DuplicateKey { key: key.to_string(), first: first.key.span },
                            entry.key.span,
                        );
                    } else {
                        entries.insert(key, entry);
                    }
                }
            }
        }
        Fields { path: path.to_string(), entries, typos, header }
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn span(&self, key: &str) -> Option<Span> {
        self.entries.get(key).map(|e| e.value.span)
    }

    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries.get(key).map(|e| e.key.span)
    }

    /// The raw value, with its span recorded.
    pub fn value(&self, ctx: &mut Ctx, key: &str) -> Option<&'a Value> {
        let entry = self.entries.get(key)?;
        ctx.spans.insert(dotted(&self.path, key), entry.value.span);
        Some(&entry.value)
    }

    fn wrong_type(&self, ctx: &mut Ctx, key: &str, expected: &'static str, value: &Value) {
        ctx.error(
            DiagnosticKind::WrongType { key: key.to_string(), expected, found: value.kind.describe() },
            value.span,
        );
    }

    /// Reports a missing key, unless a misspelling of it was already reported.
    pub fn require(&self, ctx: &mut Ctx, key: &'static str, display: &str) -> bool {
        if self.has(key) {
            return true;
        }
        if self.typos.contains(&key) {
            return false;
        }
        ctx.error(DiagnosticKind::MissingKey { key, block: display.to_string() }, self.header);
        false
    }

    pub fn int(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<i64>> {
        let value = self.value(ctx, key)?;
        match value.kind {
            ValueKind::Int(i) => Some(Spanned::new(i, value.span)),
            _ => {
                self.wrong_type(ctx, key, "an integer", value);
                None
            }
        }
    }

    /// An integer at least `min`.
    pub fn int_min(&self, ctx: &mut Ctx, key: &str, min: i64) -> Option<Spanned<i64>> {
        let value = self.int(ctx, key)?;
        if value.node < min {
            out_of_range(ctx, key, format!("must be at least {min}, found {}", value.node), value.span);
            return None;
        }
        Some(value)
    }

    /// A step count: `500` or `500 steps`, at least 1.
    pub fn steps(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<u64>> {
        let value = self.value(ctx, key)?;
        let n = match value.kind {
            ValueKind::Int(i) => i,
            ValueKind::Steps(s) => i64::try_from(s).unwrap_or(i64::MAX),
            _ => {
                self.wrong_type(ctx, key, "a step count", value);
                return None;
            }
        };
        if n < 1 {
            out_of_range(ctx, key, format!("must be at least 1, found {n}"), value.span);
            return None;
        }
        Some(Spanned::new(n as u64, value.span))
    }

    /// A number; integers are accepted.
    pub fn float(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<f64>> {
        let value = self.value(ctx, key)?;
        match value.kind {
            ValueKind::Float(f) => Some(Spanned::new(f, value.span)),
            ValueKind::Int(i) => Some(Spanned::new(i as f64, value.span)),
            _ => {
                self.wrong_type(ctx, key, "a number", value);
                None
            }
        }
    }

    /// A number in a range described by `check` and `requirement`.
    pub fn float_where(
        &self,
        ctx: &mut Ctx,
        key: &str,
        check: impl Fn(f64) -> bool,
        requirement: &str,
    ) -> Option<Spanned<f64>> {
        let value = self.float(ctx, key)?;
        if !check(value.node) {
            out_of_range(ctx, key, format!("{requirement}, found {}", value.node), value.span);
            return None;
        }
        Some(value)
    }

    pub fn bool(&self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        let value = self.value(ctx, key)?;
        match value.kind {
            ValueKind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(ctx, key, "`true` or `false`", value);
                None
            }
        }
    }

    pub fn string(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<String>> {
        let value = self.value(ctx, key)?;
        match &value.kind {
            ValueKind::Str(s) => Some(Spanned::new(s.clone(), value.span)),
            _ => {
                self.wrong_type(ctx, key, "a string", value);
                None
            }
        }
    }

    /// A name: a bare word or a quoted string.
    pub fn name(&self, ctx: &mut Ctx, key: &str) -> Option<Spanned<String>> {
        let value = self.value(ctx, key)?;
        match &value.kind {
            ValueKind::Str(s) | ValueKind::Ident(s) => Some(Spanned::new(s.clone(), value.span)),
            _ => {
                self.wrong_type(ctx, key, "a name", value);
                None
            }
        }
    }

    /// One of a fixed set of bare words.
    pub fn choice<T: Copy>(&self, ctx: &mut Ctx, key: &str, choices: &[(&str, T)]) -> Option<T> {
        let value = self.value(ctx, key)?;
        let word = match &value.kind {
            ValueKind::Ident(s) | ValueKind::Str(s) => s,
            _ => {
                self.wrong_type(ctx, key, "a name", value);
                return None;
            }
        };
        if let Some((_, t)) = choices.iter().find(|(w, _)| w == word) {
            return Some(*t);
        }
        ctx.report(
            Diagnostic::new(DiagnosticKind::UnknownValue { key: key.to_string(), value: word.clone() }, value.span)
                .suggesting(word, choices.iter().map(|(w, _)| *w)),
        );
        None
    }

    /// A list whose items `item` converts; wrong items are reported one by one.
    pub fn list<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        expected: &'static str,
        item: impl Fn(&ValueKind) -> Option<T>,
    ) -> Option<Vec<Spanned<T>>> {
        let value = self.value(ctx, key)?;
        let ValueKind::List(values) = &value.kind else {
            self.wrong_type(ctx, key, "a list", value);
            return None;
        };
        let mut out = Vec::with_capacity(values.len());
        let mut ok = true;
        for (i, v) in values.iter().enumerate() {
            match item(&v.kind) {
                Some(t) => out.push(Spanned::new(t, v.span)),
                None => {
                    ok = false;
                    let element = format!("{key}[{i}]");
                    self.wrong_type(ctx, &element, expected, v);
                }
            }
        }
        ok.then_some(out)
    }

    /// Names as a list; a single name is accepted as a list of one.
    pub fn names(&self, ctx: &mut Ctx, key: &str) -> Option<Vec<Spanned<String>>> {
        let value = self.entries.get(key).map(|e| &e.value)?;
        if let ValueKind::Ident(s) | ValueKind::Str(s) = &value.kind {
            ctx.spans.insert(dotted(&self.path, key), value.span);
            return Some(vec![Spanned::new(s.clone(), value.span)]);
        }
        self.list(ctx, key, "a name", |v| match v {
            ValueKind::Ident(s) | ValueKind::Str(s) => Some(s.clone()),
            _ => None,
        })
    }

    /// A duration or a step count; a bare number is ambiguous and asks for a unit.
    pub fn cadence(&self, ctx: &mut Ctx, key: &str) -> Option<crate::pipeline::Cadence> {
        use crate::pipeline::Cadence;
        let value = self.value(ctx, key)?;
        match value.kind {
            ValueKind::Duration(seconds) if seconds > 0.0 => Some(Cadence::Seconds { seconds }),
            ValueKind::Steps(steps) if steps > 0 => Some(Cadence::Steps { steps }),
            ValueKind::Duration(_) | ValueKind::Steps(_) => {
                out_of_range(ctx, key, "must be greater than zero".into(), value.span);
                None
            }
            ValueKind::Int(number) => {
                ctx.report(
                    Diagnostic::new(DiagnosticKind::MissingUnit { key: key.to_string(), number }, value.span)
                        .with_help(format!("write `{number} steps` or a duration such as `{number}s`")),
                );
                None
            }
            _ => {
                self.wrong_type(ctx, key, "a duration or a step count", value);
                None
            }
        }
    }

    /// A duration in seconds, greater than zero.
    pub fn duration(&self, ctx: &mut Ctx, key: &str) -> Option<f64> {
        let value = self.value(ctx, key)?;
        match value.kind {
            ValueKind::Duration(seconds) if seconds > 0.0 => Some(seconds),
            ValueKind::Duration(_) => {
                out_of_range(ctx, key, "must be greater than zero".into(), value.span);
                None
            }
            ValueKind::Int(number) => {
                ctx.report(
                    Diagnostic::new(DiagnosticKind::MissingUnit { key: key.to_string(), number }, value.span)
                        .with_help(format!("write a duration such as `{number}h` or `{number}s`")),
                );
                None
            }
            _ => {
                self.wrong_type(ctx, key, "a duration", value);
                None
            }
        }
    }

    /// Reports that `a` and `b` exclude each other when both are set; true if they conflict.
    pub fn conflict(&self, ctx: &mut Ctx, a: &str, b: &str) -> bool {
        match (self.key_span(a), self.key_span(b)) {
            (Some(sa), Some(sb)) => {
                let (first, second, first_span, second_span) =
                    if sa.start < sb.start { (a, b, sa, sb) } else { (b, a, sb, sa) };
                ctx.error(
                    DiagnosticKind::ConflictingKeys {
                        key: second.to_string(),
                        other: first.to_string(),
                        other_span: first_span,
                    },
                    second_span,
                );
                true
            }
            _ => false,
        }
    }
}

pub fn out_of_range(ctx: &mut Ctx, key: &str, requirement: String, span: Span) {
    ctx.error(DiagnosticKind::OutOfRange { key: key.to_string(), requirement }, span);
}

fn misplaced_decl(ctx: &mut Ctx, decl: &Decl, display: &str) {
    let diagnostic = Diagnostic::new(
        DiagnosticKind::MisplacedItem {
            expected: "`key = value`",
            found: "a declaration",
            place: format!("`{display}`"),
        },
        decl.kind.span,
    );
    ctx.report(if decl.name.is_some() && decl.body.is_none() && decl.source.is_none() {
        diagnostic.with_help(format!("did you mean `{} = ...`?", decl.kind.node))
    } else {
        diagnostic
    });
}
