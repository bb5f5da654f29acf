//! The `features` block: each declared column and how it turns a field into values or ids.

use serde::{Deserialize, Serialize};

/// A declared feature column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// The column's name in the pipeline.
    pub name: String,
    /// What it is and what it reads.
    #[serde(flatten)]
    pub kind: FeatureKind,
}

/// A feature column's kind and its settings, as tf.feature_column has them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    /// `numeric_column`: one or `shape` numbers from a data column.
    Numeric {
        /// The data column it reads.
        column: String,
        /// Used when the field is missing; without one, a missing field is an error.
        default: Option<f64>,
        /// How the values are scaled, with statistics from the training file.
        normalize: Normalize,
        /// Numbers per field.
        shape: usize,
    },
    /// `bucketized_column`: the bucket of a numeric column's raw value.
    Bucketized {
        /// The numeric column.
        source: String,
        /// Strictly increasing; bucket i holds `[boundaries[i-1], boundaries[i])`.
        boundaries: Vec<f64>,
    },
    /// `categorical_column_with_*`: a data column's values as ids.
    Categorical {
        /// The data column it reads.
        column: String,
        /// How a value becomes an id.
        #[serde(flatten)]
        ids: CategoricalIds,
        /// Splits one field into several values (a multivalent column).
        separator: Option<String>,
    },
    /// `embedding_column`: learned vectors for another column's ids, combined per row.
    Embedding {
        /// The id-producing column.
        source: String,
        /// Values per vector.
        dimension: usize,
        /// How a row's vectors combine.
        combiner: Combiner,
    },
    /// `indicator_column`: another column's ids as a multi-hot vector.
    Indicator {
        /// The id-producing column.
        source: String,
    },
    /// `crossed_column`: every combination of the sources' ids, hashed.
    Crossed {
        /// The categorical or bucketized columns crossed, in order.
        sources: Vec<String>,
        /// The bucket count.
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

/// How a categorical column's values become ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CategoricalIds {
    /// Each listed value is its index; others hash into `oov_buckets` after them.
    Vocabulary {
        /// The values, in id order.
        vocabulary: Vec<String>,
        /// Buckets for values not in the vocabulary (0: they are errors).
        oov_buckets: u64,
    },
    /// Every value hashes into one of `hash_buckets`.
    Hash {
        /// The bucket count.
        hash_buckets: u64,
    },
    /// The value is itself the id, in `0..identity`.
    Identity {
        /// The id count.
        identity: u64,
    },
}

impl CategoricalIds {
    /// The number of ids: the rows of an embedding or linear weight over it.
    pub fn buckets(&self) -> u64 {
        match self {
            CategoricalIds::Vocabulary { vocabulary, oov_buckets } => vocabulary.len() as u64 + oov_buckets,
            CategoricalIds::Hash { hash_buckets } => *hash_buckets,
            CategoricalIds::Identity { identity } => *identity,
        }
    }
}

/// How a numeric column is scaled before it enters a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// As read.
    None,
    /// `(x - mean) / std`.
    Zscore,
    /// `(x - min) / (max - min)`.
    Minmax,
}

/// How an embedding combines the vectors of a row's ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combiner {
    /// Their mean.
    Mean,
    /// Their sum.
    Sum,
    /// Their sum over the square root of their count.
    Sqrtn,
}
