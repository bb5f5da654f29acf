//! Two plans, compared: which model, optimizer and training keys changed, with the line of each
//! new value, and which tensors that changes (added, removed, reshaped, or the same shape with a
//! different meaning). Pure: the guard, `est diff` and watch mode all render this one value.

pub mod report;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::SpanMap;
use crate::plan::fingerprint::{self, Fields};
use crate::plan::Plan;
use crate::span::Span;

/// One key whose value differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The dotted key (`model.hidden_units`).
    pub key: String,
    /// `None` when the key is new.
    pub old: Option<String>,
    /// `None` when the key is gone.
    pub new: Option<String>,
    /// The line of the new value in the new file, when known.
    pub line: Option<usize>,
}

/// How a tensor differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorChangeKind {
    /// Only the new plan has it.
    Added,
    /// Only the old plan has it.
    Removed,
    /// Both have it, in other shapes.
    Reshaped,
    /// Same name and shape, but it now means something else (an activation, a vocabulary order).
    Reinterpreted,
}

/// One tensor that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorChange {
    /// Its checkpoint name.
    pub name: String,
    /// Its shape in the old plan.
    pub old_shape: Option<Vec<u64>>,
    /// Its shape in the new plan.
    pub new_shape: Option<Vec<u64>>,
    /// How it differs.
    pub kind: TensorChangeKind,
}

/// What changed between two plans, by what it does to a model_dir.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Diff {
    /// Keys that change what the tensors mean.
    pub model: Vec<Change>,
    /// Keys that change the optimizer's state.
    pub optimizer: Vec<Change>,
    /// Keys a checkpoint restores across.
    pub training: Vec<Change>,
    /// The tensors that differ.
    pub tensors: Vec<TensorChange>,
    /// Tensors a warm start would load: same name, same shape.
    pub reusable: Vec<String>,
}

impl Diff {
    /// Whether the old checkpoint's tensors fit the new model.
    pub fn model_compatible(&self) -> bool {
        self.model.is_empty()
    }

    /// Whether the old optimizer state fits the new optimizer.
    pub fn optimizer_compatible(&self) -> bool {
        self.optimizer.is_empty()
    }

    /// `optimizer.learning_rate 0.05 → 0.1, train.batch_size 100 → 32`.
    pub fn training_summary(&self) -> String {
        self.training
            .iter()
            .map(|c| {
                format!(
                    "{} {} → {}",
                    c.key,
                    c.old.as_deref().unwrap_or("(unset)"),
                    c.new.as_deref().unwrap_or("(unset)")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where the new plan came from, to give the line of each new value.
pub struct NewSource<'a> {
    /// Where each key of the new file was written.
    pub spans: &'a SpanMap,
    /// The new file's text.
    pub text: &'a str,
}

impl NewSource<'_> {
    /// The line of `key`, or of the nearest enclosing key that has one.
    fn line(&self, key: &str) -> Option<usize> {
        let mut k = key;
        loop {
            if let Some(span) = self.spans.get(k) {
                return Some(line_of(*span, self.text));
            }
            k = &k[..k.rfind('.')?];
        }
    }
}

fn line_of(span: Span, text: &str) -> usize {
    span.line_col(text).0
}

/// What changed from `old` to `new`; with `source`, each change names its line.
pub fn diff(old: &Plan, new: &Plan, source: Option<&NewSource>) -> Diff {
    let compare = |a: Fields, b: Fields| -> Vec<Change> {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| Change {
                key: k.clone(),
                old: a.get(k).cloned(),
                new: b.get(k).cloned(),
                line: b.get(k).and(source).and_then(|s| s.line(k)),
            })
            .collect()
    };
    let model = compare(fingerprint::model_fields(old), fingerprint::model_fields(new));
    let optimizer = compare(fingerprint::optimizer_fields(old), fingerprint::optimizer_fields(new));
    let mut training = compare(training_fields(old), training_fields(new));
    // A new kind of optimizer brings its own settings; listing each as a change says nothing.
    for c in &optimizer {
        if let Some(block) = c.key.strip_suffix(".kind") {
            let common = ["learning_rate", "decay", "clip_norm", "weight_decay", "lazy"];
            training.retain(|t| {
                t.key.strip_prefix(block).and_then(|k| k.strip_prefix('.')).is_none_or(|k| common.contains(&k))
            });
        }
    }
    let tensors = tensor_changes(old, new, &model);
    let reusable = new
        .model
        .variables
        .iter()
        .filter(|v| old.model.variables.iter().any(|o| o.name == v.name && o.shape == v.shape))
        .map(|v| v.name.clone())
        .collect();
    Diff { model, optimizer, training, tensors, reusable }
}

/// Every setting outside the fingerprints, as dotted keys with compact JSON values.
pub fn training_fields(plan: &Plan) -> Fields {
    let mut out = Fields::new();
    flatten("data", &json(&plan.data), &mut out, &["label", "label_vocabulary"]);
    for o in &plan.optimizers {
        flatten(o.scope.block(), &json(o), &mut out, &["scope", "kind"]);
    }
    if let Some(dnn) = &plan.model.dnn {
        out.insert("model.dropout".into(), dnn.spec.dropout.to_string());
    }
    flatten("train", &json(&plan.train), &mut out, &[]);
    flatten("eval", &json(&plan.eval), &mut out, &[]);
    if let Some(early_stop) = &plan.early_stop {
        flatten("early_stop", &json(early_stop), &mut out, &[]);
    }
    flatten("checkpoint", &json(&plan.checkpoint), &mut out, &[]);
    flatten("summaries", &json(&plan.summaries), &mut out, &[]);
    out
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Fields, skip: &[&str]) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                // Nested objects (a decay schedule, a cadence) read better whole.
                out.insert(format!("{prefix}.{k}"), v.to_string());
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Tensors added, removed or reshaped, and same-shaped ones whose meaning the model changes alter.
fn tensor_changes(old: &Plan, new: &Plan, model: &[Change]) -> Vec<TensorChange> {
    let old_vars: BTreeMap<&str, &Vec<u64>> = old.model.variables.iter().map(|v| (v.name.as_str(), &v.shape)).collect();
    let new_vars: BTreeMap<&str, &Vec<u64>> = new.model.variables.iter().map(|v| (v.name.as_str(), &v.shape)).collect();
    let mut out = Vec::new();
    for v in &old.model.variables {
        match new_vars.get(v.name.as_str()) {
            None => out.push(TensorChange {
                name: v.name.clone(),
                old_shape: Some(v.shape.clone()),
                new_shape: None,
                kind: TensorChangeKind::Removed,
            }),
            Some(shape) if **shape != v.shape => out.push(TensorChange {
                name: v.name.clone(),
                old_shape: Some(v.shape.clone()),
                new_shape: Some((*shape).clone()),
                kind: TensorChangeKind::Reshaped,
            }),
            Some(_) => {}
        }
    }
    for v in &new.model.variables {
        if !old_vars.contains_key(v.name.as_str()) {
            out.push(TensorChange {
                name: v.name.clone(),
                old_shape: None,
                new_shape: Some(v.shape.clone()),
                kind: TensorChangeKind::Added,
            });
        }
    }
    let mut meaning: Vec<String> = Vec::new();
    for change in model {
        meaning.extend(reinterpreted_by(&change.key, old, new));
    }
    for v in &new.model.variables {
        let same = old_vars.get(v.name.as_str()).is_some_and(|s| **s == v.shape);
        if same && meaning.contains(&v.name) && !out.iter().any(|c| c.name == v.name) {
            out.push(TensorChange {
                name: v.name.clone(),
                old_shape: Some(v.shape.clone()),
                new_shape: Some(v.shape.clone()),
                kind: TensorChangeKind::Reinterpreted,
            });
        }
    }
    let order = |name: &str| new.model.variables.iter().chain(&old.model.variables).position(|v| v.name == name);
    out.sort_by_key(|c| order(&c.name));
    out
}

/// The tensors whose meaning a change of `key` alters.
fn reinterpreted_by(key: &str, old: &Plan, new: &Plan) -> Vec<String> {
    let names: Vec<&str> = new.model.variables.iter().map(|v| v.name.as_str()).collect();
    let matching = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        names.iter().filter(|n| pred(n)).map(|n| n.to_string()).collect()
    };
    let head = |n: &str| {
        n.starts_with("dnn/logits/") || (n.starts_with("linear/linear_model/") && !n.ends_with("embedding_weights"))
    };
    match key {
        "model.kind" => matching(&|_| true),
        "model.activation" => matching(&|n| n.starts_with("dnn/hiddenlayer_") || n.starts_with("dnn/logits/")),
        "model.n_classes" | "data.label" | "data.label_vocabulary" => matching(&head),
        "model.inputs" | "model.dnn_inputs" | "model.batch_norm" => matching(&|n| {
            n == "dnn/hiddenlayer_0/kernel" || n.starts_with("dnn/hiddenlayer_") && n.contains("/batchnorm_")
        }),
        _ => {
            let Some(column) = key.strip_prefix("features.").and_then(|k| k.split('.').next()) else { return vec![] };
            let mut readers = consumers(column, old);
            readers.extend(consumers(column, new));
            let dnn_reads = |plan: &Plan| {
                plan.model.dnn.as_ref().is_some_and(|d| d.spec.inputs.iter().any(|i| readers.contains(i)))
            };
            let first_layer = dnn_reads(old) || dnn_reads(new);
            matching(&|n| {
                (first_layer && n == "dnn/hiddenlayer_0/kernel")
                    || readers.iter().any(|r| {
                        n == format!("linear/linear_model/{r}/weights")
                            || n.ends_with(&format!("/{r}/embedding_weights"))
                            || n.starts_with(&format!("normalization/{r}/"))
                    })
            })
        }
    }
}

/// `column` and every column built from it, directly or not.
fn consumers(column: &str, plan: &Plan) -> Vec<String> {
    let mut out = vec![column.to_string()];
    let mut i = 0;
    while i < out.len() {
        let current = out[i].clone();
        for f in &plan.features {
            let sources = f.feature.kind.sources();
            if sources.contains(&current.as_str()) && !out.contains(&f.feature.name) {
                out.push(f.feature.name.clone());
            }
        }
        i += 1;
    }
    out
}
