//! A data file as typed columns: one numeric block, id columns, labels and weights, and what
//! `bad_rows = skip` left out. Both readers build it; lowering turns it into tensors.

use std::collections::BTreeMap;

use camino::Utf8Path;

use super::hash;
use crate::pipeline::FeatureKind;
use crate::plan::Plan;

/// A data file as typed columns.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Rows read (skipped ones not counted).
    pub rows: usize,
    /// Every numeric feature, missing values replaced by the default, side by side.
    pub numeric: NumericBlock,
    /// Per categorical, bucketized and crossed feature, row-major `[rows, width]`, `-1` padding.
    pub ids: BTreeMap<String, IdColumn>,
    /// Class ids or values, when the rows were read for training or evaluation.
    pub labels: Option<Labels>,
    /// Each row's weight (the data block's `weight` column), when the rows were read for
    /// training or evaluation and the pipeline weights them.
    pub weights: Option<Vec<f32>>,
    /// Rows left out under `bad_rows = skip`, and the first reason.
    pub skipped: usize,
    /// The first skipped row's error, as a message.
    pub first_skipped: Option<String>,
}

/// Numeric columns as one row-major `[rows, width]` block, in the plan's `numeric_order`, so
/// the training input is one buffer and a batch of it one gather.
#[derive(Clone, Debug, Default)]
pub struct NumericBlock {
    /// `[rows, width]`, row-major.
    pub values: Vec<f32>,
    /// Values per row.
    pub width: usize,
    /// Where each column sits in a row, in order.
    pub columns: Vec<NumericColumn>,
}

/// One numeric feature's place in the block.
#[derive(Clone, Debug, Default)]
pub struct NumericColumn {
    /// The feature.
    pub name: String,
    /// Its first value's index in a row.
    pub offset: usize,
    /// Its values per row.
    pub shape: usize,
    /// Over the values present in the file, defaults excluded.
    pub stats: Stats,
}

impl Table {
    /// What `bad_rows = skip` left out of this table, read from `path`, if anything.
    pub fn skipped_note(&self, path: &Utf8Path) -> Option<String> {
        (self.skipped > 0).then(|| {
            let first = self.first_skipped.as_deref().unwrap_or("");
            let rows = if self.skipped == 1 { "row" } else { "rows" };
            format!("skipped {} bad {rows} of `{path}`; the first: {first}", self.skipped)
        })
    }
}

impl NumericBlock {
    /// The column of feature `name`.
    pub fn column(&self, name: &str) -> Option<&NumericColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// One column's values, row-major `[rows, shape]`.
    pub fn values_of(&self, name: &str) -> Option<Vec<f32>> {
        let c = self.column(name)?;
        if self.width == 0 {
            return Some(Vec::new());
        }
        Some(self.values.chunks(self.width).flat_map(|row| row[c.offset..c.offset + c.shape].iter().copied()).collect())
    }
}

/// A column's statistics, which `zscore` and `minmax` normalise with.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Values present.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their population standard deviation.
    pub std: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

/// One id-producing feature's ids.
#[derive(Clone, Debug, Default)]
pub struct IdColumn {
    /// `[rows, width]`, row-major, `-1` for no id.
    pub ids: Vec<i64>,
    /// Ids per row: 1 for single-valued columns, the largest count for multivalent ones.
    pub width: usize,
}

/// A table's labels.
#[derive(Clone, Debug)]
pub enum Labels {
    /// Class ids, for classifiers.
    Classes(Vec<i64>),
    /// Values, for regressors.
    Values(Vec<f32>),
}

/// Bucket ids and crosses from the columns they are built from, for single-valued sources.
pub fn derive(plan: &Plan, table: &mut Table) {
    for f in &plan.features {
        if let FeatureKind::Bucketized { source, boundaries } = &f.feature.kind {
            let Some(values) = table.numeric.values_of(source) else { continue };
            let ids = values.iter().map(|&x| boundaries.partition_point(|b| *b <= x as f64) as i64).collect();
            table.ids.insert(f.feature.name.clone(), IdColumn { ids, width: 1 });
        }
    }
    for f in &plan.features {
        if let FeatureKind::Crossed { sources, hash_buckets } = &f.feature.kind {
            let columns: Vec<&IdColumn> = sources.iter().filter_map(|s| table.ids.get(s)).collect();
            if columns.len() != sources.len() {
                continue;
            }
            let ids = (0..table.rows)
                .map(|r| {
                    let parts: Vec<i64> = columns.iter().map(|c| c.ids[r]).collect();
                    if parts.iter().any(|&id| id < 0) {
                        -1
                    } else {
                        hash::cross(&parts, *hash_buckets)
                    }
                })
                .collect();
            table.ids.insert(f.feature.name.clone(), IdColumn { ids, width: 1 });
        }
    }
}
