//! The `features` block: each declared column and how it turns a field into values or ids.

use serde::{Deserialize, Serialize};

/// A declared feature column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(flatten)]
    pub kind: FeatureKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    Numeric {
        /// The data column it reads.
        column: String,
        /// Used when the field is missing; without one, a missing field is an error.
        default: Option<f64>,
        normalize: Normalize,
        shape: usize,
    },
    Bucketized {
        source: String,
        boundaries: Vec<f64>,
    },
    Categorical {
        column: String,
        #[serde(flatten)]
        ids: CategoricalIds,
        /// Splits one field into several values (a multivalent column).
        separator: Option<String>,
    },
    Embedding {
        source: String,
        dimension: usize,
        combiner: Combiner,
    },
    Indicator {
        source: String,
    },
    Crossed {
        sources: Vec<String>,
        hash_buckets: u64,
    },
}

impl FeatureKind {
    /// The word used in `.est` files and messages.
    pub fn word(&self) -> &'static str {
        match self {
            FeatureKind::Numeric { .. } => "numeric",
            FeatureKind::Bucketized { .. } => "bucketized",
            FeatureKind::Categorical { .. } => "categorical",
            FeatureKind::Embedding { .. } => "embedding",
            FeatureKind::Indicator { .. } => "indicator",
            FeatureKind::Crossed { .. } => "crossed",
        }
    }

    /// Columns that produce ids rather than dense values: a DNN needs them wrapped.
    pub fn is_sparse(&self) -> bool {
        matches!(self, FeatureKind::Categorical { .. } | FeatureKind::Crossed { .. })
    }

    /// Columns that can feed `embedding`, `indicator` and `crossed`.
    pub fn has_ids(&self) -> bool {
        matches!(self, FeatureKind::Categorical { .. } | FeatureKind::Crossed { .. } | FeatureKind::Bucketized { .. })
    }

    /// The other declared columns this one is built from.
    pub fn sources(&self) -> Vec<&str> {
        match self {
            FeatureKind::Bucketized { source, .. }
            | FeatureKind::Embedding { source, .. }
            | FeatureKind::Indicator { source } => vec![source.as_str()],
            FeatureKind::Crossed { sources, .. } => sources.iter().map(String::as_str).collect(),
            FeatureKind::Numeric { .. } | FeatureKind::Categorical { .. } => vec![],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CategoricalIds {
    Vocabulary { vocabulary: Vec<String>, oov_buckets: u64 },
    Hash { hash_buckets: u64 },
    Identity { identity: u64 },
}

impl CategoricalIds {
    pub fn buckets(&self) -> u64 {
        match self {
            CategoricalIds::Vocabulary { vocabulary, oov_buckets } => vocabulary.len() as u64 + oov_buckets,
            CategoricalIds::Hash { hash_buckets } => *hash_buckets,
            CategoricalIds::Identity { identity } => *identity,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    None,
    Zscore,
    Minmax,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combiner {
    Mean,
    Sum,
    Sqrtn,
}
