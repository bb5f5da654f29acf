//! Fingerprints from a canonical encoding of plan fields, never from YAML text. Each field is a
//! dotted key (named as in the `.est` file, so a diff can point at the line) and a canonical
//! value; the fingerprint is SHA-256 over the sorted fields.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::*;
use crate::pipeline::CategoricalIds;

/// Dotted key → canonical value.
pub type Fields = BTreeMap<String, String>;

/// The plan's model and optimizer fingerprints.
pub fn fingerprints(plan: &Plan) -> Fingerprints {
    Fingerprints { model: digest(&model_fields(plan)), optimizer: digest(&optimizer_fields(plan)) }
}

/// The first 16 hex digits of SHA-256 over `key=value` lines in key order.
pub fn digest(fields: &Fields) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in fields {
        hasher.update(key.as_bytes());
        hasher.update([0x1f]);
        hasher.update(value.as_bytes());
        hasher.update([0x1e]);
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn num(x: f64) -> String {
    // Debug formatting of f64 is the shortest text that reads back to the same bits.
    format!("{x:?}")
}

fn text(s: &str) -> String {
    format!("{s:?}")
}

fn list<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    format!("[{}]", items.iter().map(f).collect::<Vec<_>>().join(", "))
}

fn opt<T>(value: &Option<T>, f: impl Fn(&T) -> String) -> String {
    value.as_ref().map_or_else(|| "none".to_string(), f)
}

fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// What decides the model's tensors and what they mean.
pub fn model_fields(plan: &Plan) -> Fields {
    let mut fields = Fields::new();
    let mut put = |key: String, value: String| {
        fields.insert(key, value);
    };
    put("data.label".into(), text(&plan.data.label));
    if plan.model.kind.is_classifier() {
        put("data.label_vocabulary".into(), opt(&plan.data.label_vocabulary, |v| list(v, |s| text(s))));
    }
    for feature in used_features(plan) {
        let p = format!("features.{}", feature.name);
        put(format!("{p}.kind"), feature.kind.word().into());
        match &feature.kind {
            FeatureKind::Numeric { column, default, normalize, shape } => {
                put(format!("{p}.column"), text(column));
                put(format!("{p}.default"), opt(default, |d| num(*d)));
                put(format!("{p}.normalize"), word(normalize));
                put(format!("{p}.shape"), shape.to_string());
            }
            FeatureKind::Bucketized { source, boundaries } => {
                put(format!("{p}.source"), text(source));
                put(format!("{p}.boundaries"), list(boundaries, |b| num(*b)));
            }
            FeatureKind::Categorical { column, ids, separator } => {
                put(format!("{p}.column"), text(column));
                put(format!("{p}.separator"), opt(separator, |s| text(s)));
                match ids {
                    CategoricalIds::Vocabulary { vocabulary, oov_buckets } => {
                        put(format!("{p}.vocabulary"), list(vocabulary, |s| text(s)));
                        put(format!("{p}.oov_buckets"), oov_buckets.to_string());
                    }
                    CategoricalIds::Hash { hash_buckets } => put(format!("{p}.hash_buckets"), hash_buckets.to_string()),
                    CategoricalIds::Identity { identity } => put(format!("{p}.identity"), identity.to_string()),
                }
            }
            FeatureKind::Embedding { source, dimension, combiner } => {
                put(format!("{p}.source"), text(source));
                put(format!("{p}.dimension"), dimension.to_string());
                put(format!("{p}.combiner"), word(combiner));
            }
            FeatureKind::Indicator { source } => put(format!("{p}.source"), text(source)),
            FeatureKind::Crossed { sources, hash_buckets } => {
                put(format!("{p}.sources"), list(sources, |s| text(s)));
                put(format!("{p}.hash_buckets"), hash_buckets.to_string());
            }
        }
    }
    let model = &plan.model;
    put("model.kind".into(), model.kind.word().into());
    if let Some(n) = model.head.n_classes {
        put("model.n_classes".into(), n.to_string());
    }
    let combined = model.kind.is_combined();
    if let Some(dnn) = &model.dnn {
        let d = &dnn.spec;
        put("model.hidden_units".into(), list(&d.hidden_units, |u| u.to_string()));
        put("model.activation".into(), word(&d.activation));
        put("model.batch_norm".into(), d.batch_norm.to_string());
        put(if combined { "model.dnn_inputs" } else { "model.inputs" }.into(), list(&d.inputs, |s| text(s)));
    }
    if let Some(linear) = &model.linear {
        put(if combined { "model.linear_inputs" } else { "model.inputs" }.into(), list(&linear.inputs, |s| text(s)));
    }
    fields
}

/// The layout of optimizer state: which optimizer covers which part, and its slots.
pub fn optimizer_fields(plan: &Plan) -> Fields {
    let mut fields = Fields::new();
    for o in &plan.optimizers {
        let block = o.scope.block();
        fields.insert(format!("{block}.kind"), o.kind.word().into());
        fields.insert(format!("{block}.state"), list(&o.kind.slots(), |s| s.to_string()));
    }
    fields
}

/// The features the model reads, directly or as sources of what it reads.
fn used_features(plan: &Plan) -> Vec<&Feature> {
    let read = plan.features_read(|_| true);
    plan.features.iter().map(|f| &f.feature).filter(|f| read.contains(&f.name.as_str())).collect()
}
