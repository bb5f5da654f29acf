//! The `model` block: its kind, the keys that kind takes, and the columns it reads.

use super::features::choice_or;
use super::fields::{out_of_range, Ctx, Fields};
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::pipeline::*;
use crate::span::{Span, Spanned};
use crate::spec::{Decl, Item, ValueKind};

const KEYS: [&str; 8] =
    ["hidden_units", "n_classes", "activation", "dropout", "batch_norm", "inputs", "dnn_inputs", "linear_inputs"];

pub const ACTIVATIONS: &[(&str, Activation)] = &[
    ("relu", Activation::Relu),
    ("relu6", Activation::Relu6),
    ("elu", Activation::Elu),
    ("selu", Activation::Selu),
    ("gelu", Activation::Gelu),
    ("tanh", Activation::Tanh),
    ("sigmoid", Activation::Sigmoid),
    ("swish", Activation::Swish),
    ("leaky_relu", Activation::LeakyRelu),
    ("linear", Activation::Linear),
];

/// Whether `key` applies to a model of `kind`.
fn applies(key: &str, kind: ModelKind) -> bool {
    match key {
        "hidden_units" | "activation" | "dropout" | "batch_norm" => kind.has_dnn(),
        "n_classes" => kind.is_classifier(),
        "inputs" => !kind.is_combined() && !kind.is_baseline(),
        "dnn_inputs" | "linear_inputs" => kind.is_combined(),
        _ => false,
    }
}

pub fn check(ctx: &mut Ctx, decl: &Decl, features: Option<&[Feature]>, data: Option<&DataSpec>) -> Option<ModelSpec> {
    let words: Vec<&str> = ModelKind::ALL.iter().map(|(w, _)| *w).collect();
    let Some(kind_name) = &decl.name else {
        ctx.report(
            Diagnostic::new(
                DiagnosticKind::MalformedBlock { block: "model".into(), problem: "needs a model kind".into() },
                decl.kind.span,
            )
            .with_help(format!("write `model dnn_classifier {{ ... }}`; the kinds are {}", words.join(", "))),
        );
        return None;
    };
    let Some(kind) = ModelKind::ALL.iter().find(|(w, _)| *w == kind_name.node).map(|(_, k)| *k) else {
        ctx.report(
            Diagnostic::new(DiagnosticKind::UnknownModel { name: kind_name.node.clone() }, kind_name.span)
                .suggesting(&kind_name.node, words.iter().copied()),
        );
        return None;
    };
    ctx.spans.insert("model.kind".into(), kind_name.span);
    if let Some(source) = &decl.source {
        ctx.error(
            DiagnosticKind::MalformedBlock { block: "model".into(), problem: "takes no `= ...`".into() },
            source.span(),
        );
    }
    let items: &[Item] = decl.body.as_ref().map_or(&[], |b| b.items.as_slice());
    let f = Fields::new(ctx, "model", "model", kind_name.span, items, &KEYS, &|_| None);
    let mut ok = true;
    for key in KEYS {
        if f.has(key) && !applies(key, kind) {
            let diagnostic = Diagnostic::new(
                DiagnosticKind::KeyNotForModel { key: key.to_string(), model: kind.word().to_string() },
                f.key_span(key)?,
            );
            ctx.report(match key {
                "inputs" => diagnostic.with_help("a wide & deep model takes `dnn_inputs` and `linear_inputs`"),
                "dnn_inputs" | "linear_inputs" => diagnostic.with_help("this model takes `inputs`"),
                _ => diagnostic,
            });
            ok = false;
        }
    }
    if let (Some(data), false) = (data, kind.is_classifier()) {
        if data.label_vocabulary.is_some() {
            ctx.report(
                Diagnostic::new(
                    DiagnosticKind::KeyNotForModel { key: "label_vocabulary".into(), model: kind.word().to_string() },
                    ctx.spans.get("data.label_vocabulary").copied().unwrap_or(kind_name.span),
                )
                .with_help("a regressor predicts numbers; remove `label_vocabulary` or use a classifier"),
            );
            ok = false;
        }
    }

    let n_classes = if kind.is_classifier() { n_classes(ctx, &f, data).map(Some) } else { Some(None) };

    let dnn = if kind.has_dnn() {
        f.require(ctx, "hidden_units", "model");
        let hidden_units = hidden_units(ctx, &f);
        let activation = choice_or(ctx, &f, "activation", ACTIVATIONS, Activation::Relu);
        let dropout = if f.has("dropout") {
            f.float_where(ctx, "dropout", |p| (0.0..1.0).contains(&p), "must be at least 0 and below 1").map(|d| d.node)
        } else {
            Some(0.0)
        };
        let batch_norm = if f.has("batch_norm") { f.bool(ctx, "batch_norm") } else { Some(false) };
        let key = if kind.is_combined() { "dnn_inputs" } else { "inputs" };
        let inputs = inputs(ctx, &f, key, features, kind, true);
        Some(DnnSpec {
            inputs: inputs?,
            hidden_units: hidden_units?,
            activation: activation?,
            dropout: dropout?,
            batch_norm: batch_norm?,
        })
    } else {
        None
    };
    let linear = if kind.has_linear() {
        let key = if kind.is_combined() { "linear_inputs" } else { "inputs" };
        Some(LinearSpec { inputs: inputs(ctx, &f, key, features, kind, false)? })
    } else {
        None
    };
    if !ok {
        return None;
    }
    Some(ModelSpec { kind, n_classes: n_classes?, dnn, linear })
}

fn n_classes(ctx: &mut Ctx, f: &Fields, data: Option<&DataSpec>) -> Option<u32> {
    let vocabulary = data.and_then(|d| d.label_vocabulary.as_ref());
    if let (Some(v), Some(span)) = (vocabulary, ctx.spans.get("data.label_vocabulary").copied()) {
        if v.len() < 2 {
            out_of_range(ctx, "label_vocabulary", format!("needs at least 2 classes, found {}", v.len()), span);
            return None;
        }
    }
    let Some(n) = (if f.has("n_classes") { Some(f.int_min(ctx, "n_classes", 2)?) } else { None }) else {
        return Some(vocabulary.map_or(2, |v| v.len() as u32));
    };
    if n.node > u32::MAX as i64 {
        out_of_range(ctx, "n_classes", format!("must be at most {}, found {}", u32::MAX, n.node), n.span);
        return None;
    }
    if let Some(vocabulary) = vocabulary {
        if vocabulary.len() as i64 != n.node {
            ctx.report(
                Diagnostic::new(
                    DiagnosticKind::ClassCountMismatch { n_classes: n.node, vocabulary: vocabulary.len() },
                    n.span,
                )
                .with_help("each class needs exactly one name in `label_vocabulary`"),
            );
            return None;
        }
    }
    Some(n.node as u32)
}

fn hidden_units(ctx: &mut Ctx, f: &Fields) -> Option<Vec<usize>> {
    let units = f.list(ctx, "hidden_units", "an integer", |v| match v {
        ValueKind::Int(i) => Some(*i),
        _ => None,
    })?;
    if units.is_empty() {
        ctx.report(
            Diagnostic::new(DiagnosticKind::EmptyHiddenUnits, f.span("hidden_units")?)
                .with_help("give at least one layer, e.g. `hidden_units = [10, 10]`, or use a linear model"),
        );
        return None;
    }
    let mut ok = true;
    for (i, u) in units.iter().enumerate() {
        if u.node < 1 {
            out_of_range(ctx, &format!("hidden_units[{i}]"), format!("must be at least 1, found {}", u.node), u.span);
            ok = false;
        }
    }
    ok.then(|| units.into_iter().map(|u| u.node as usize).collect())
}

/// The columns a model half reads: as listed under `key`, or by default every column not
/// wrapped by another. A DNN reads dense columns only.
fn inputs(
    ctx: &mut Ctx,
    f: &Fields,
    key: &str,
    features: Option<&[Feature]>,
    kind: ModelKind,
    dnn: bool,
) -> Option<Vec<String>> {
    let features = features?;
    let listed: Vec<Spanned<String>> = if f.has(key) {
        let names = f.names(ctx, key)?;
        if names.is_empty() {
            out_of_range(ctx, key, "must name at least one column".into(), f.span(key)?);
            return None;
        }
        if !super::data::no_repeats(ctx, key, &names) {
            return None;
        }
        names
    } else if kind.is_combined() {
        f.require(ctx, if dnn { "dnn_inputs" } else { "linear_inputs" }, "model");
        return None;
    } else {
        // A column wrapped by bucketized, embedding or indicator is read through its wrapper;
        // a cross does not hide its parts.
        let consumed: Vec<&str> = features
            .iter()
            .filter(|x| !matches!(x.kind, FeatureKind::Crossed { .. }))
            .flat_map(|x| x.kind.sources())
            .collect();
        features
            .iter()
            .filter(|x| !consumed.contains(&x.name.as_str()))
            .map(|x| {
                Spanned::new(
                    x.name.clone(),
                    ctx.spans.get(&format!("features.{}", x.name)).copied().unwrap_or_default(),
                )
            })
            .collect()
    };
    let mut ok = true;
    for name in &listed {
        let Some(feature) = features.iter().find(|x| x.name == name.node) else {
            ctx.report(
                Diagnostic::new(DiagnosticKind::UnknownColumn { name: name.node.clone() }, name.span)
                    .suggesting(&name.node, features.iter().map(|x| x.name.as_str())),
            );
            ok = false;
            continue;
        };
        if dnn && feature.kind.is_sparse() {
            ctx.report(sparse_in_dnn(feature, name.span, f.has(key)));
            ok = false;
        }
    }
    let mut names: Vec<String> = listed.into_iter().map(|n| n.node).collect();
    // Inputs are concatenated in name order, as tf.estimator did, so declaration order is free.
    names.sort();
    ok.then_some(names)
}

fn sparse_in_dnn(feature: &Feature, span: Span, listed: bool) -> Diagnostic {
    let name = &feature.name;
    let mut help = format!(
        "wrap it: `embedding {name}_embedding = {name} {{ dimension = 8 }}` or `indicator {name}_indicator = {name}`"
    );
    if !listed {
        help.push_str(", or list the DNN's columns in `inputs`");
    }
    Diagnostic::new(DiagnosticKind::SparseColumnInDnn { name: name.clone(), kind: feature.kind.word() }, span)
        .with_help(help)
}
