//! The `features` block: column declarations, their parameters, and the references between them.

use super::data::{no_repeats, CheckedData};
use super::fields::{out_of_range, Ctx, Fields};
use crate::data::parquet::Need;
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::pipeline::{CategoricalIds, Combiner, Feature, FeatureKind, Normalize};
use crate::span::{Span, Spanned};
use crate::spec::{Decl, Item, Source, ValueKind};

pub const KINDS: [&str; 6] = ["numeric", "bucketized", "categorical", "embedding", "indicator", "crossed"];

/// The keys each column kind takes.
fn keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "numeric" => &["default", "normalize", "shape"],
        "bucketized" => &["boundaries"],
        "categorical" => &["vocabulary", "oov_buckets", "hash_buckets", "identity", "separator"],
        "embedding" => &["dimension", "combiner"],
        "crossed" => &["hash_buckets"],
        _ => &[],
    }
}

/// How each kind is written, for help texts.
fn usage(kind: &str) -> &'static str {
    match kind {
        "numeric" => "numeric NAME",
        "bucketized" => "bucketized NAME = NUMERIC { boundaries = [...] }",
        "categorical" => "categorical NAME { vocabulary = [...] }",
        "embedding" => "embedding NAME = CATEGORICAL { dimension = 8 }",
        "indicator" => "indicator NAME = CATEGORICAL",
        _ => "crossed NAME = [A, B] { hash_buckets = 100 }",
    }
}

struct Declared {
    feature: Feature,
    name_span: Span,
    /// Spans of the names in `= source`, in order.
    source_spans: Vec<Span>,
}

pub fn check(ctx: &mut Ctx, decl: &Decl, data: Option<&CheckedData>) -> Option<Vec<Feature>> {
    let body = super::plain_body(ctx, decl)?;
    let mut declared: Vec<Declared> = Vec::new();
    // Columns with their own errors: references to them are not reported again.
    let mut failed: Vec<&str> = Vec::new();
    let mut ok = true;
    for item in &body.items {
        let column = match item {
            Item::Decl(column) => column,
            Item::Entry(entry) => {
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::MisplacedItem {
                            expected: "a column",
                            found: "`key = value`",
                            place: "`features`".into(),
                        },
                        entry.key.span,
                    )
                    .with_help("declare columns like `numeric SepalLength`"),
                );
                ok = false;
                continue;
            }
        };
        match check_column(ctx, column, data) {
            Some(d) => {
                if let Some(first) = declared.iter().find(|x| x.feature.name == d.feature.name) {
                    ctx.error(
                        DiagnosticKind::DuplicateColumn { name: d.feature.name.clone(), first: first.name_span },
                        d.name_span,
                    );
                    ok = false;
                } else {
                    declared.push(d);
                }
            }
            None => {
                failed.extend(column.name.as_ref().map(|n| n.node.as_str()));
                ok = false;
            }
        }
    }
    if body.items.is_empty() {
        ctx.report(
            Diagnostic::new(
                DiagnosticKind::MalformedBlock { block: "features".into(), problem: "declares no columns".into() },
                decl.span,
            )
            .with_help("declare at least one column, e.g. `numeric SepalLength`"),
        );
        ok = false;
    }
    ok &= check_sources(ctx, &declared, &failed);
    ok.then(|| declared.into_iter().map(|d| d.feature).collect())
}

fn check_column(ctx: &mut Ctx, decl: &Decl, data: Option<&CheckedData>) -> Option<Declared> {
    let kind = decl.kind.node.as_str();
    if !KINDS.contains(&kind) {
        ctx.report(
            Diagnostic::new(DiagnosticKind::UnknownColumnKind { kind: kind.to_string() }, decl.kind.span)
                .suggesting(kind, KINDS),
        );
        return None;
    }
    let Some(name) = &decl.name else {
        ctx.report(
            Diagnostic::new(
                DiagnosticKind::MalformedBlock { block: kind.to_string(), problem: "needs a name".into() },
                decl.kind.span,
            )
            .with_help(format!("write `{}`", usage(kind))),
        );
        return None;
    };
    if let Some(reason) = invalid_name(&name.node) {
        ctx.error(DiagnosticKind::InvalidColumnName { name: name.node.clone(), reason }, name.span);
        return None;
    }
    let path = format!("features.{}", name.node);
    ctx.spans.insert(path.clone(), name.span);
    let items: &[Item] = decl.body.as_ref().map_or(&[], |b| b.items.as_slice());
    let f = Fields::new(ctx, &path, &format!("{kind} {}", name.node), name.span, items, keys(kind), &|key| {
        let owners: Vec<&str> = KINDS.iter().copied().filter(|k| keys(k).contains(&key)).collect();
        (!owners.is_empty()).then(|| format!("`{key}` belongs to {} columns, not {kind}", owners.join(" and ")))
    });
    let column = Column { decl, kind, name, f };
    let (feature_kind, source_spans) = match kind {
        "numeric" => (column.numeric(ctx, data)?, Vec::new()),
        "categorical" => (column.categorical(ctx, data)?, Vec::new()),
        "bucketized" => column.bucketized(ctx)?,
        "embedding" => column.embedding(ctx)?,
        "indicator" => column.indicator(ctx)?,
        _ => column.crossed(ctx)?,
    };
    let read = match &feature_kind {
        FeatureKind::Numeric { column, shape, .. } => {
            Some((column, if *shape == 1 { Need::Number } else { Need::Numbers }))
        }
        FeatureKind::Categorical { column, ids: CategoricalIds::Identity { .. }, .. } => Some((column, Need::Ids)),
        FeatureKind::Categorical { column, .. } => Some((column, Need::Values)),
        _ => None,
    };
    if let (Some((column, need)), Some(data)) = (read, data) {
        let span = decl.source.as_ref().map_or(name.span, Source::span);
        let reader = format!("{kind} column `{}`", name.node);
        let fits = data.files.iter().all(|file| file.check_type(ctx, column, need, reader.clone(), span));
        if !fits {
            return None;
        }
    }
    if decl.source.is_some() && matches!(kind, "numeric" | "categorical") {
        ctx.spans.insert(format!("{path}.column"), decl.source.as_ref().map_or(name.span, Source::span));
    }
    Some(Declared {
        feature: Feature { name: name.node.clone(), kind: feature_kind },
        name_span: name.span,
        source_spans,
    })
}

/// A column declaration whose kind and name are known: each kind's keys and sources.
struct Column<'a> {
    decl: &'a Decl,
    kind: &'a str,
    name: &'a Spanned<String>,
    f: Fields<'a>,
}

/// A derived column's kind, and where each of its sources is named.
type Derived = (FeatureKind, Vec<Span>);

impl Column<'_> {
    /// The data column a numeric or categorical column reads: its own name, or `= "column"`.
    fn data_column(&self, ctx: &mut Ctx, data: Option<&CheckedData>) -> Option<String> {
        let kind = self.kind;
        let column = match &self.decl.source {
            None => self.name.clone(),
            Some(Source::One(column)) => column.clone(),
            Some(Source::List(_, span)) => {
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::MalformedBlock { block: kind.into(), problem: "reads one data column".into() },
                        *span,
                    )
                    .with_help(format!("write `{}` or `{kind} NAME = \"data column\"`", usage(kind))),
                );
                return None;
            }
        };
        check_data_column(ctx, &column, data)?;
        Some(column.node)
    }

    /// The one declared column a bucketized, embedding or indicator column is built from.
    fn one_source(&self, ctx: &mut Ctx) -> Option<(String, Vec<Span>)> {
        match &self.decl.source {
            Some(Source::One(s)) => Some((s.node.clone(), vec![s.span])),
            other => {
                let span = other.as_ref().map_or(self.name.span, Source::span);
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::MalformedBlock {
                            block: self.kind.into(),
                            problem: "is built from one column".into(),
                        },
                        span,
                    )
                    .with_help(format!("write `{}`", usage(self.kind))),
                );
                None
            }
        }
    }

    fn numeric(&self, ctx: &mut Ctx, data: Option<&CheckedData>) -> Option<FeatureKind> {
        let f = &self.f;
        let column = self.data_column(ctx, data);
        let default = f.float(ctx, "default").map(|d| d.node);
        let normalize = choice_or(ctx, f, "normalize", NORMALIZE, Normalize::None);
        let shape = int_or(ctx, f, "shape", 1, 1);
        Some(FeatureKind::Numeric {
            column: column?,
            default: if f.has("default") { Some(default?) } else { None },
            normalize: normalize?,
            shape: shape? as usize,
        })
    }

    fn categorical(&self, ctx: &mut Ctx, data: Option<&CheckedData>) -> Option<FeatureKind> {
        let column = self.data_column(ctx, data);
        let ids = categorical_ids(ctx, &self.f, &self.name.node);
        let separator = self.f.string(ctx, "separator");
        if let Some(s) = &separator {
            if s.node.is_empty() {
                out_of_range(ctx, "separator", "must not be empty".into(), s.span);
                return None;
            }
        }
        Some(FeatureKind::Categorical { column: column?, ids: ids?, separator: separator.map(|s| s.node) })
    }

    fn bucketized(&self, ctx: &mut Ctx) -> Option<Derived> {
        let f = &self.f;
        let source = self.one_source(ctx);
        f.require(ctx, "boundaries", &format!("bucketized column `{}`", self.name.node));
        let boundaries = f.list(ctx, "boundaries", "a number", |v| match v {
            ValueKind::Float(x) => Some(*x),
            ValueKind::Int(i) => Some(*i as f64),
            _ => None,
        });
        let boundaries = boundaries.and_then(|b| {
            let span = f.span("boundaries")?;
            if b.is_empty() {
                out_of_range(ctx, "boundaries", "must not be empty".into(), span);
                return None;
            }
            if let Some(w) = b.windows(2).find(|w| w[1].node <= w[0].node) {
                ctx.error(DiagnosticKind::UnsortedBoundaries { key: "boundaries".into() }, w[1].span);
                return None;
            }
            Some(b.into_iter().map(|x| x.node).collect())
        });
        let (source, spans) = source?;
        Some((FeatureKind::Bucketized { source, boundaries: boundaries? }, spans))
    }

    fn embedding(&self, ctx: &mut Ctx) -> Option<Derived> {
        let f = &self.f;
        let source = self.one_source(ctx);
        f.require(ctx, "dimension", &format!("embedding column `{}`", self.name.node));
        let dimension = f.int_min(ctx, "dimension", 1);
        let combiner = choice_or(ctx, f, "combiner", COMBINERS, Combiner::Mean);
        let (source, spans) = source?;
        Some((FeatureKind::Embedding { source, dimension: dimension?.node as usize, combiner: combiner? }, spans))
    }

    fn indicator(&self, ctx: &mut Ctx) -> Option<Derived> {
        let (source, spans) = self.one_source(ctx)?;
        Some((FeatureKind::Indicator { source }, spans))
    }

    fn crossed(&self, ctx: &mut Ctx) -> Option<Derived> {
        let name = self.name;
        self.f.require(ctx, "hash_buckets", &format!("crossed column `{}`", name.node));
        let hash_buckets = self.f.int_min(ctx, "hash_buckets", 1);
        let sources: Vec<Spanned<String>> = match &self.decl.source {
            Some(Source::List(names, _)) => names.clone(),
            Some(Source::One(one)) => vec![one.clone()],
            None => vec![],
        };
        if sources.len() < 2 {
            ctx.report(
                Diagnostic::new(
                    DiagnosticKind::TooFewCrossed { column: name.node.clone() },
                    self.decl.source.as_ref().map_or(name.span, Source::span),
                )
                .with_help(format!("write `{}`", usage(self.kind))),
            );
            return None;
        }
        if !no_repeats(ctx, "crossed columns", &sources) {
            return None;
        }
        let spans = sources.iter().map(|s| s.span).collect();
        let kind = FeatureKind::Crossed {
            sources: sources.into_iter().map(|s| s.node).collect(),
            hash_buckets: hash_buckets?.node as u64,
        };
        Some((kind, spans))
    }
}

const NORMALIZE: &[(&str, Normalize)] =
    &[("none", Normalize::None), ("zscore", Normalize::Zscore), ("minmax", Normalize::Minmax)];
const COMBINERS: &[(&str, Combiner)] = &[("mean", Combiner::Mean), ("sum", Combiner::Sum), ("sqrtn", Combiner::Sqrtn)];

/// A choice with a default when the key is absent; `None` only when it is present and wrong.
pub fn choice_or<T: Copy>(ctx: &mut Ctx, f: &Fields, key: &str, choices: &[(&str, T)], default: T) -> Option<T> {
    if f.has(key) {
        f.choice(ctx, key, choices)
    } else {
        Some(default)
    }
}

/// An integer at least `min`, with a default when absent.
pub fn int_or(ctx: &mut Ctx, f: &Fields, key: &str, default: i64, min: i64) -> Option<i64> {
    if f.has(key) {
        f.int_min(ctx, key, min).map(|v| v.node)
    } else {
        Some(default)
    }
}

fn categorical_ids(ctx: &mut Ctx, f: &Fields, name: &str) -> Option<CategoricalIds> {
    let ways = ["vocabulary", "hash_buckets", "identity"];
    let given: Vec<&str> = ways.iter().copied().filter(|k| f.has(k)).collect();
    match given.as_slice() {
        [] => {
            ctx.report(
                Diagnostic::new(DiagnosticKind::CategoricalWithoutBuckets { column: name.to_string() }, f.header)
                    .with_help("add `vocabulary = [...]`, `hash_buckets = N` or `identity = N`"),
            );
            None
        }
        [one] => {
            if *one != "vocabulary" && f.has("oov_buckets") {
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::ConflictingKeys {
                            key: "oov_buckets".into(),
                            other: one.to_string(),
                            other_span: f.key_span(one)?,
                        },
                        f.key_span("oov_buckets")?,
                    )
                    .with_help("`oov_buckets` applies to `vocabulary` only"),
                );
                return None;
            }
            match *one {
                "vocabulary" => {
                    let values = f.list(ctx, "vocabulary", "a string or an integer", |v| match v {
                        ValueKind::Str(s) => Some(s.clone()),
                        ValueKind::Int(i) => Some(i.to_string()),
                        _ => None,
                    });
                    let oov_buckets = int_or(ctx, f, "oov_buckets", 0, 0);
                    let values = values?;
                    if values.is_empty() {
                        out_of_range(ctx, "vocabulary", "must not be empty".into(), f.span("vocabulary")?);
                        return None;
                    }
                    if !no_repeats(ctx, "vocabulary", &values) {
                        return None;
                    }
                    Some(CategoricalIds::Vocabulary {
                        vocabulary: values.into_iter().map(|v| v.node).collect(),
                        oov_buckets: oov_buckets? as u64,
                    })
                }
                "hash_buckets" => {
                    Some(CategoricalIds::Hash { hash_buckets: f.int_min(ctx, "hash_buckets", 1)?.node as u64 })
                }
                _ => Some(CategoricalIds::Identity { identity: f.int_min(ctx, "identity", 1)?.node as u64 }),
            }
        }
        [first, second, ..] => {
            f.conflict(ctx, first, second);
            None
        }
    }
}

/// Names must work as part of a tensor name (`linear/linear_model/NAME/weights`).
fn invalid_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('/') {
        Some("contains `/`, which separates the parts of tensor names")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

fn check_data_column(ctx: &mut Ctx, column: &Spanned<String>, data: Option<&CheckedData>) -> Option<()> {
    let data = data?;
    if data.spec.label == column.node {
        ctx.report(
            Diagnostic::new(DiagnosticKind::LabelAsFeature { name: column.node.clone() }, column.span)
                .with_help("a model cannot see the answer it is asked to predict"),
        );
        return None;
    }
    for file in &data.files {
        if !file.columns.contains(&column.node) {
            ctx.report(
                Diagnostic::new(
                    DiagnosticKind::UnknownDataColumn { name: column.node.clone(), file: file.path.to_string() },
                    column.span,
                )
                .suggesting(&column.node, file.columns.iter().map(String::as_str)),
            );
            return None;
        }
    }
    Some(())
}

/// Every `= source` names a declared column of a kind that can feed it.
fn check_sources(ctx: &mut Ctx, declared: &[Declared], failed: &[&str]) -> bool {
    let mut ok = true;
    for d in declared {
        for (source, span) in d.feature.kind.sources().into_iter().zip(&d.source_spans) {
            let Some(target) = declared.iter().find(|x| x.feature.name == source) else {
                ok = false;
                if failed.contains(&source) {
                    continue;
                }
                ctx.report(
                    Diagnostic::new(DiagnosticKind::UnknownColumn { name: source.to_string() }, *span)
                        .suggesting(source, declared.iter().map(|x| x.feature.name.as_str())),
                );
                continue;
            };
            let fits = match &d.feature.kind {
                FeatureKind::Bucketized { .. } => {
                    matches!(target.feature.kind, FeatureKind::Numeric { shape: 1, .. })
                }
                FeatureKind::Crossed { .. } => {
                    matches!(target.feature.kind, FeatureKind::Categorical { .. } | FeatureKind::Bucketized { .. })
                }
                _ => target.feature.kind.has_ids(),
            };
            if !fits {
                let expected = match d.feature.kind {
                    FeatureKind::Bucketized { .. } => "a numeric column of shape 1",
                    FeatureKind::Crossed { .. } => "a categorical or bucketized column",
                    _ => "a categorical, crossed or bucketized column",
                };
                ctx.error(
                    DiagnosticKind::WrongSourceKind {
                        column: d.feature.name.clone(),
                        kind: d.feature.kind.word(),
                        source: source.to_string(),
                        source_kind: target.feature.kind.word(),
                        expected,
                    },
                    *span,
                );
                ok = false;
            }
        }
    }
    ok
}
