//! What an exported model takes and gives. One input per data column the model reads, named
//! after the column; columns whose ids need est's hash (hashed, crossed, out-of-vocabulary and
//! multivalent ones) take those ids instead, as `est featurize` prints them. The outputs are the
//! keys `est predict` writes. `signature.json` is this, so a program can build the inputs from
//! it alone.

use serde::Serialize;

use super::ExportError;
use crate::pipeline::{CategoricalIds, FeatureKind};
use crate::plan::{Fingerprints, HeadKind, Plan};

/// `signature.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Signature {
    /// `est-export/1`.
    pub format: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The checkpoint's global step.
    pub global_step: u64,
    /// The checkpoint's file in model_dir.
    pub checkpoint: String,
    /// Its SHA-256, as the manifest records it.
    pub checkpoint_sha256: String,
    /// The fingerprints of the plan that trained it.
    pub fingerprint: Fingerprints,
    /// The ONNX opsets the model imports.
    pub opset: Opsets,
    /// The field values that meant "missing" in the training data: feed them as NaN, an empty
    /// string or no id.
    pub missing: Vec<String>,
    /// In the order the graph declares them.
    pub inputs: Vec<Input>,
    /// In the order the graph declares them.
    pub outputs: Vec<Output>,
}

/// The opsets a model imports.
#[derive(Clone, Debug, Serialize)]
pub struct Opsets {
    /// The standard domain's.
    #[serde(rename = "ai.onnx")]
    pub onnx: i64,
    /// `ai.onnx.ml`'s, when a `LabelEncoder` is used.
    #[serde(rename = "ai.onnx.ml", skip_serializing_if = "Option::is_none")]
    pub ml: Option<i64>,
}

/// One graph input.
#[derive(Clone, Debug, Serialize)]
pub struct Input {
    /// The graph's name for it: the data column's, or for a crossed column the feature's.
    pub name: String,
    /// Its element type.
    #[serde(rename = "type")]
    pub elem: Elem,
    /// `N` is the batch; `K_<name>` the ids per row of a multivalent column.
    pub shape: Vec<Dim>,
    /// The data column it comes from; none for a crossed column or a baseline's row count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The feature columns that read it.
    pub features: Vec<String>,
    /// How its values are made.
    pub feed: Feed,
    /// The same, in a sentence.
    pub how: String,
}

/// An element type, as numpy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Elem {
    /// `float32`.
    Float32,
    /// `int64`.
    Int64,
    /// Strings (UTF-8).
    String,
}

/// A dimension: fixed, or named (`N`, the batch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Dim {
    /// This many.
    Fixed(u64),
    /// Any number, the same wherever the name recurs.
    Named(String),
}

/// The batch dimension.
pub const BATCH: &str = "N";

/// How an input's values are made from a row.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feed {
    /// The column's numbers, as read; NaN is a missing value.
    Numbers {
        /// Numbers per row.
        shape: usize,
        /// What a NaN becomes, per feature reading it; without one a NaN is not allowed.
        #[serde(skip_serializing_if = "Option::is_none")]
        default: Option<f64>,
    },
    /// The value as a string; one not in the vocabulary, or an empty string, gives no id.
    Vocabulary {
        /// The values, in id order.
        vocabulary: Vec<String>,
    },
    /// The integer itself, in `0..identity`; `-1` gives no id.
    Identity {
        /// The id count.
        identity: u64,
    },
    /// Ids from est's hash or vocabulary, as `est featurize` prints them; `-1` pads a row.
    Ids {
        /// The feature whose ids these are.
        feature: String,
        /// Ids are in `0..buckets`.
        buckets: u64,
        /// How a value becomes an id.
        #[serde(flatten)]
        rule: IdRule,
    },
    /// A baseline reads no feature: any `N` values, of which only the count is read.
    Rows,
}

/// How a value becomes an id, as the plan says.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum IdRule {
    /// A categorical column's rule, and its separator when it is multivalent.
    Categorical {
        /// The vocabulary and out-of-vocabulary buckets, the hash buckets or the identity.
        #[serde(flatten)]
        ids: CategoricalIds,
        /// Splits a field into several values.
        #[serde(skip_serializing_if = "Option::is_none")]
        separator: Option<String>,
    },
    /// The cross of other columns' ids, hashed.
    Crossed {
        /// The columns crossed, in order.
        sources: Vec<String>,
        /// The bucket count.
        hash_buckets: u64,
    },
}

/// One graph output.
#[derive(Clone, Debug, Serialize)]
pub struct Output {
    /// As `est predict` names the key.
    pub name: String,
    /// Its element type.
    #[serde(rename = "type")]
    pub elem: Elem,
    /// `N` is the batch.
    pub shape: Vec<Dim>,
    /// What it holds.
    pub how: String,
}

fn batch() -> Dim {
    Dim::Named(BATCH.into())
}

/// The inputs the model reads, in plan order, crossed columns last.
pub fn inputs(plan: &Plan) -> Result<Vec<Input>, ExportError> {
    let mut out: Vec<Input> = Vec::new();
    // A crossed column's ids are an input: its sources are not read for it.
    let used = plan.features_read(|kind| !matches!(kind, FeatureKind::Crossed { .. }));
    let mut crossed = Vec::new();
    for f in plan.features.iter().filter(|f| used.contains(&f.feature.name.as_str())) {
        let name = &f.feature.name;
        let input = match &f.feature.kind {
            FeatureKind::Numeric { column, default, shape, .. } => Input {
                name: column.clone(),
                elem: Elem::Float32,
                shape: vec![batch(), Dim::Fixed(*shape as u64)],
                column: Some(column.clone()),
                features: vec![name.clone()],
                feed: Feed::Numbers { shape: *shape, default: *default },
                how: match default {
                    Some(d) => format!("`{column}`'s numbers; NaN is a missing value and becomes {d}"),
                    None => format!("`{column}`'s numbers; never NaN: the column has no default"),
                },
            },
            FeatureKind::Categorical { column, ids: CategoricalIds::Vocabulary { vocabulary, oov_buckets: 0 }, separator: None } => {
                Input {
                    name: column.clone(),
                    elem: Elem::String,
                    shape: vec![batch(), Dim::Fixed(1)],
                    column: Some(column.clone()),
                    features: vec![name.clone()],
                    feed: Feed::Vocabulary { vocabulary: vocabulary.clone() },
                    how: format!(
                        "`{column}`'s value, trimmed; an empty string (missing) or a value outside the vocabulary gives no id"
                    ),
                }
            }
            FeatureKind::Categorical { column, ids: CategoricalIds::Identity { identity }, separator: None } => Input {
                name: column.clone(),
                elem: Elem::Int64,
                shape: vec![batch(), Dim::Fixed(1)],
                column: Some(column.clone()),
                features: vec![name.clone()],
                feed: Feed::Identity { identity: *identity },
                how: format!("`{column}`'s integer, in 0..{identity}; -1 (missing) gives no id"),
            },
            FeatureKind::Categorical { column, ids, separator } => Input {
                name: column.clone(),
                elem: Elem::Int64,
                shape: vec![
                    batch(),
                    if separator.is_some() { Dim::Named(format!("K_{column}")) } else { Dim::Fixed(1) },
                ],
                column: Some(column.clone()),
                features: vec![name.clone()],
                feed: Feed::Ids {
                    feature: name.clone(),
                    buckets: ids.buckets(),
                    rule: IdRule::Categorical { ids: ids.clone(), separator: separator.clone() },
                },
                how: if name == column {
                    format!("the ids of `{name}`, as `est featurize` prints them; -1 pads a row")
                } else {
                    format!("the ids of `{name}` (from `{column}`), as `est featurize` prints them; -1 pads a row")
                },
            },
            FeatureKind::Crossed { sources, hash_buckets } => {
                // A cross has one id per combination: several only when a source is multivalent.
                let multivalent = sources.iter().any(|s| {
                    plan.feature(s).is_some_and(|f| matches!(&f.feature.kind, FeatureKind::Categorical { separator: Some(_), .. }))
                });
                crossed.push(Input {
                    name: name.clone(),
                    elem: Elem::Int64,
                    shape: vec![batch(), if multivalent { Dim::Named(format!("K_{name}")) } else { Dim::Fixed(1) }],
                    column: None,
                    features: vec![name.clone()],
                    feed: Feed::Ids {
                        feature: name.clone(),
                        buckets: *hash_buckets,
                        rule: IdRule::Crossed { sources: sources.clone(), hash_buckets: *hash_buckets },
                    },
                    how: format!("the ids of `{name}`, as `est featurize` prints them; -1 pads a row"),
                });
                continue;
            }
            FeatureKind::Bucketized { .. } | FeatureKind::Embedding { .. } | FeatureKind::Indicator { .. } => continue,
        };
        add(&mut out, input)?;
    }
    for input in crossed {
        add(&mut out, input)?;
    }
    if out.is_empty() && plan.model.kind.is_baseline() {
        out.push(Input {
            name: "rows".into(),
            elem: Elem::Int64,
            shape: vec![batch()],
            column: None,
            features: Vec::new(),
            feed: Feed::Rows,
            how: "any N values: a baseline reads no feature, only how many rows there are".into(),
        });
    }
    Ok(out)
}

/// Adds `input`, sharing an input of the same column that is fed the same way, else under the
/// feature's name when the column's name is taken.
fn add(inputs: &mut Vec<Input>, mut input: Input) -> Result<(), ExportError> {
    if let Some(same) = inputs.iter_mut().find(|i| i.name == input.name) {
        // Numbers are shared as read; a looked-up value only with the same vocabulary or count.
        let same_feed = match (&same.feed, &input.feed) {
            (Feed::Numbers { .. }, Feed::Numbers { .. }) => true,
            (Feed::Vocabulary { vocabulary: a }, Feed::Vocabulary { vocabulary: b }) => a == b,
            (Feed::Identity { identity: a }, Feed::Identity { identity: b }) => a == b,
            _ => false,
        };
        let shareable =
            same_feed && same.column == input.column && same.elem == input.elem && same.shape == input.shape;
        if shareable {
            if let (Feed::Numbers { default: a, .. }, Feed::Numbers { default: b, .. }) = (&same.feed, &input.feed) {
                // Each feature fills a NaN with its own default; say so when they differ.
                if a != b {
                    same.how = format!(
                        "`{}`'s numbers; NaN is a missing value, which each feature fills with its default",
                        input.name
                    );
                    same.feed = Feed::Numbers { shape: input.feed_shape(), default: None };
                }
            }
            same.features.extend(input.features);
            return Ok(());
        }
        let feature = input.features[0].clone();
        if inputs.iter().any(|i| i.name == feature) {
            return Err(ExportError::NameClash(feature));
        }
        input.name = feature;
    }
    inputs.push(input);
    Ok(())
}

impl Input {
    fn feed_shape(&self) -> usize {
        match self.feed {
            Feed::Numbers { shape, .. } => shape,
            _ => 1,
        }
    }

    /// The input of feature `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.features.iter().any(|f| f == name)
    }
}

/// The outputs, in the order `est predict` writes its keys.
pub fn outputs(plan: &Plan) -> Vec<Output> {
    let head = &plan.model.head;
    let out = |name: &str, elem, width: u64, how: &str| Output {
        name: name.into(),
        elem,
        shape: vec![batch(), Dim::Fixed(width)],
        how: how.into(),
    };
    match head.kind {
        HeadKind::Regression => vec![out("predictions", Elem::Float32, 1, "the predicted value")],
        kind => {
            let n = head.n_classes.unwrap_or(2) as u64;
            let mut list = vec![
                out("class_ids", Elem::Int64, 1, "the predicted class's id"),
                out("classes", Elem::String, 1, "its name from `label_vocabulary`, else the id"),
            ];
            if kind == HeadKind::Binary {
                list.push(out("logistic", Elem::Float32, 1, "the positive class's probability"));
            }
            list.push(out("probabilities", Elem::Float32, n, "each class's probability"));
            list.push(out("logits", Elem::Float32, head.logits, "the head's logits"));
            list
        }
    }
}
