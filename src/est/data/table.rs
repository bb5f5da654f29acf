//! A data file as typed columns: one numeric block, id columns, labels and weights, and what
//! `bad_rows = skip` left out. Both readers build it; lowering turns it into tensors.

use std::collections::BTreeMap;

use super::hash;
use super::stats::{merged, Acc};
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
    /// The sums `stats` comes from, so that parts of one input add up to the same statistics.
    pub(crate) totals: Acc,
}

impl Table {
    /// What `bad_rows = skip` left out of this table, read from `path`, if anything.
    pub fn skipped_note(&self, path: impl std::fmt::Display) -> Option<String> {
        (self.skipped > 0).then(|| {
            let first = self.first_skipped.as_deref().unwrap_or("");
            let rows = if self.skipped == 1 { "row" } else { "rows" };
            format!("skipped {} bad {rows} of `{path}`; the first: {first}", self.skipped)
        })
    }
}

impl Table {
    /// `next`'s rows after this table's: the next part of the same input, read with the same plan.
    pub(crate) fn append(&mut self, next: Table) {
        let rows = self.rows;
        self.rows += next.rows;
        let block = &mut self.numeric;
        block.values.extend_from_slice(&next.numeric.values);
        for (column, other) in block.columns.iter_mut().zip(&next.numeric.columns) {
            column.totals = merged(&column.totals, &other.totals);
            column.stats = column.totals.stats();
        }
        for (name, column) in next.ids {
            match self.ids.get_mut(&name) {
                Some(ours) => ours.append(rows, column),
                None => {
                    self.ids.insert(name, column);
                }
            }
        }
        match (&mut self.labels, next.labels) {
            (Some(Labels::Classes(a)), Some(Labels::Classes(b))) => a.extend(b),
            (Some(Labels::Values(a)), Some(Labels::Values(b))) => a.extend(b),
            _ => {}
        }
        if let (Some(a), Some(b)) = (&mut self.weights, next.weights) {
            a.extend(b);
        }
        self.skipped += next.skipped;
        if self.first_skipped.is_none() {
            self.first_skipped = next.first_skipped;
        }
    }
}

impl IdColumn {
    /// `next`'s rows after this column's `rows`, both padded to the wider of the two.
    fn append(&mut self, rows: usize, next: IdColumn) {
        let width = self.width.max(next.width);
        let widen = |column: &IdColumn| -> Vec<i64> {
            if column.width == width {
                return column.ids.to_vec();
            }
            let mut out = vec![-1; column.ids.len() / column.width.max(1) * width];
            for (to, from) in out.chunks_mut(width).zip(column.ids.chunks(column.width.max(1))) {
                to[..from.len()].copy_from_slice(from);
            }
            out
        };
        if self.width != width {
            self.ids = widen(self).into();
            self.width = width;
        }
        debug_assert_eq!(self.ids.len(), rows * width);
        let tail = if next.width == width { next.ids } else { widen(&next).into() };
        self.ids.to_mut().extend_from_slice(&tail);
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
    pub ids: super::Values<i64>,
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
