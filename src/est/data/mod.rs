//! CSV to typed columns, as the plan describes them: numeric values with defaults filled in,
//! bucket ids for every id-producing column, labels as class ids or values. Every bad field is
//! reported with file, line and column, or skipped and counted when the pipeline says so.
//! No libtorch here: lowering turns a [`Table`] into tensors.

pub mod fast;
pub mod hash;
pub mod order;

use std::collections::{BTreeMap, HashMap};

use camino::{Utf8Path, Utf8PathBuf};

use crate::pipeline::{BadRows, CategoricalIds, FeatureKind};
use crate::plan::{HeadKind, Plan};
use crate::suggestion::suggest;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: Utf8PathBuf, source: std::io::Error },
    #[error("`{path}` is empty: it has no header row")]
    Empty { path: Utf8PathBuf },
    #[error("`{path}` has no rows")]
    NoRows { path: Utf8PathBuf },
    #[error("`{path}`: {message}")]
    Header { path: Utf8PathBuf, message: String },
    #[error("{path}:{line}:{column}: {message}")]
    Field { path: Utf8PathBuf, line: u64, column: usize, message: String },
    #[error("every row of `{path}` is bad ({skipped} skipped); the first: {first}")]
    AllRowsBad { path: Utf8PathBuf, skipped: usize, first: Box<DataError> },
}

/// What the rows are read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Training or evaluation: every row needs a label.
    Labelled,
    /// Prediction: a label column, if present, is ignored.
    Unlabelled,
}

/// A data file as typed columns.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub rows: usize,
    /// Every numeric feature, missing values replaced by the default, side by side.
    pub numeric: NumericBlock,
    /// Per categorical, bucketized and crossed feature, row-major `[rows, width]`, `-1` padding.
    pub ids: BTreeMap<String, IdColumn>,
    pub labels: Option<Labels>,
    /// Rows left out under `bad_rows = skip`, and the first reason.
    pub skipped: usize,
    pub first_skipped: Option<String>,
}

/// Numeric columns as one row-major `[rows, width]` block, in the plan's `numeric_order`, so
/// the training input is one buffer and a batch of it one gather.
#[derive(Clone, Debug, Default)]
pub struct NumericBlock {
    pub values: Vec<f32>,
    pub width: usize,
    pub columns: Vec<NumericColumn>,
}

#[derive(Clone, Debug, Default)]
pub struct NumericColumn {
    pub name: String,
    pub offset: usize,
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

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub count: u64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Debug, Default)]
pub struct IdColumn {
    pub ids: Vec<i64>,
    /// Ids per row: 1 for single-valued columns, the largest count for multivalent ones.
    pub width: usize,
}

#[derive(Clone, Debug)]
pub enum Labels {
    Classes(Vec<i64>),
    Values(Vec<f32>),
}

/// How one declared feature reads its part of a row.
enum Reader<'p> {
    Numeric { field: usize, shape: usize, default: Option<f64> },
    Categorical { field: usize, ids: &'p CategoricalIds, vocabulary: HashMap<&'p str, i64>, separator: Option<&'p str> },
    Bucketized { source: String, boundaries: &'p [f64] },
    Crossed { sources: &'p [String], buckets: u64 },
}

/// Ids in compressed rows while loading; padded at the end.
#[derive(Default)]
struct Csr {
    ids: Vec<i64>,
    ends: Vec<usize>,
}

impl Csr {
    fn row(&self, r: usize) -> &[i64] {
        let start = if r == 0 { 0 } else { self.ends[r - 1] };
        &self.ids[start..self.ends[r]]
    }

    fn pad(self) -> IdColumn {
        let rows = self.ends.len();
        let width = (0..rows).map(|r| self.row(r).len()).max().unwrap_or(0).max(1);
        let mut ids = vec![-1; rows * width];
        for r in 0..rows {
            let row = self.row(r);
            ids[r * width..r * width + row.len()].copy_from_slice(row);
        }
        IdColumn { ids, width }
    }
}

/// Reads `path` as the plan's data block describes: clean files the fast way, anything else
/// (and any file the fast way stumbles on) the careful way, which names every bad field.
pub fn load(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Result<Table, DataError> {
    if let Some(table) = fast::load(plan, path, purpose) {
        return Ok(table);
    }
    careful(plan, path, purpose)
}

/// Bucket ids and crosses from the columns they are built from, for single-valued sources.
fn derive(plan: &Plan, table: &mut Table) {
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

/// The careful reader: the csv crate, every field checked, errors with file, line and column.
pub fn careful(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Result<Table, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: path.to_owned(), source })?;
    let body = bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(&bytes);
    let data = &plan.data;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(data.delimiter as u8)
        .has_headers(data.header)
        .flexible(true)
        .from_reader(body);

    let header: Vec<String> = if data.header {
        let raw = reader.byte_headers().map_err(|e| csv_error(path, body, e))?.clone();
        if raw.is_empty() || (raw.len() == 1 && raw[0].is_empty()) {
            return Err(DataError::Empty { path: path.to_owned() });
        }
        if let Some(i) = raw.iter().position(|name| std::str::from_utf8(name).is_err()) {
            return Err(DataError::Field {
                path: path.to_owned(),
                line: raw.position().map_or(1, |p| p.line()),
                column: field_column(body, &raw, i, data.delimiter as u8),
                message: format!("the name of column {} is not valid UTF-8", i + 1),
            });
        }
        raw.iter().map(|f| String::from_utf8_lossy(f).trim().to_string()).collect()
    } else {
        Vec::new()
    };
    if let Some(name) = crate::pipeline::repeated(&header) {
        return Err(DataError::Header {
            path: path.to_owned(),
            message: format!("column `{name}` appears twice in the header"),
        });
    }
    let names: Vec<String> = data.columns.clone().unwrap_or(header);
    if data.header && names.is_empty() {
        return Err(DataError::Empty { path: path.to_owned() });
    }
    let field = |name: &str| -> Result<usize, DataError> {
        names.iter().position(|n| n == name).ok_or_else(|| {
            let hint = suggest(name, names.iter().map(String::as_str))
                .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
            DataError::Header { path: path.to_owned(), message: format!("there is no column `{name}`{hint}") }
        })
    };

    let label_field = match purpose {
        Purpose::Labelled => Some(field(&data.label)?),
        Purpose::Unlabelled => None,
    };
    let mut readers: Vec<(&str, Reader)> = Vec::new();
    for f in &plan.features {
        let name = f.feature.name.as_str();
        let reader = match &f.feature.kind {
            FeatureKind::Numeric { column, default, shape, .. } => {
                Reader::Numeric { field: field(column)?, shape: *shape, default: *default }
            }
            FeatureKind::Categorical { column, ids, separator } => {
                let vocabulary = match ids {
                    CategoricalIds::Vocabulary { vocabulary, .. } => {
                        vocabulary.iter().enumerate().map(|(i, v)| (v.as_str(), i as i64)).collect()
                    }
                    _ => HashMap::new(),
                };
                Reader::Categorical { field: field(column)?, ids, vocabulary, separator: separator.as_deref() }
            }
            FeatureKind::Bucketized { source, boundaries } => Reader::Bucketized { source: source.clone(), boundaries },
            FeatureKind::Crossed { sources, hash_buckets } => Reader::Crossed { sources, buckets: *hash_buckets },
            FeatureKind::Embedding { .. } | FeatureKind::Indicator { .. } => continue,
        };
        readers.push((name, reader));
    }
    // Derived columns read what the plain ones produced, so they come last.
    readers.sort_by_key(|(_, r)| match r {
        Reader::Numeric { .. } | Reader::Categorical { .. } => 0,
        Reader::Bucketized { .. } => 1,
        Reader::Crossed { .. } => 2,
    });

    let head = plan.model.head.kind;
    let class_names: Option<HashMap<&str, i64>> =
        data.label_vocabulary.as_ref().map(|v| v.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect());
    let n_classes = plan.model.head.n_classes.unwrap_or(0) as i64;

    // Per numeric column: values, shape, and the rows where the value was missing.
    let mut numeric: BTreeMap<&str, (Vec<f32>, usize, Vec<usize>)> = BTreeMap::new();
    let mut ids: BTreeMap<&str, Csr> = BTreeMap::new();
    let mut classes: Vec<i64> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut table = Table::default();
    let mut record = csv::ByteRecord::new();
    let mut row_numeric: HashMap<&str, f64> = HashMap::new();
    let mut row_ids: HashMap<&str, Vec<i64>> = HashMap::new();

    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, body, e)),
        }
        let line = record.position().map_or(0, |p| start(body, p).0);
        let at = |column: usize, message: String| DataError::Field {
            path: path.to_owned(),
            line,
            column: field_column(body, &record, column, data.delimiter as u8),
            message,
        };
        let parsed = (|| -> Result<(), DataError> {
            if record.len() != names.len() {
                let column = record.len().min(names.len());
                return Err(at(
                    column,
                    format!(
                        "expected {} {}, found {}",
                        names.len(),
                        crate::diagnostic::plural(names.len(), "field", "fields"),
                        record.len()
                    ),
                ));
            }
            let text = |i: usize| -> Result<&str, DataError> {
                std::str::from_utf8(&record[i])
                    .map(str::trim)
                    .map_err(|_| at(i, format!("`{}` is not valid UTF-8", names[i])))
            };
            let is_missing = |s: &str| data.missing.iter().any(|m| m == s);
            row_numeric.clear();
            row_ids.clear();
            for (name, reader) in &readers {
                match reader {
                    Reader::Numeric { field, shape, default } => {
                        let raw = text(*field)?;
                        let parts: Vec<f32> = if is_missing(raw) {
                            match default {
                                Some(d) => vec![*d as f32; *shape],
                                None => {
                                    return Err(at(
                                        *field,
                                        format!("`{}` is missing and column `{name}` has no `default`", names[*field]),
                                    ))
                                }
                            }
                        } else if raw.is_empty() {
                            return Err(at(
                                *field,
                                format!(
                                    "`{}` is empty; list \"\" in `missing` and give `{name}` a `default` to allow it",
                                    names[*field]
                                ),
                            ));
                        } else {
                            let parsed: Result<Vec<f32>, _> = raw.split_whitespace().map(str::parse::<f32>).collect();
                            match parsed {
                                Ok(p) if p.len() == *shape && p.iter().all(|x| x.is_finite()) => p,
                                Ok(p) if p.len() != *shape => {
                                    return Err(at(
                                        *field,
                                        format!("`{}` has {} values, expected {shape}", names[*field], p.len()),
                                    ))
                                }
                                _ => {
                                    return Err(at(
                                        *field,
                                        format!("`{}` must be a number, found `{}`", names[*field], shown(raw)),
                                    ))
                                }
                            }
                        };
                        row_numeric.insert(name, parts[0] as f64);
                        let column = numeric.entry(name).or_insert_with(|| (Vec::new(), *shape, Vec::new()));
                        column.0.extend(parts);
                        if is_missing(raw) {
                            column.2.push(table.rows);
                        }
                    }
                    Reader::Categorical { field, ids: how, vocabulary, separator } => {
                        let raw = text(*field)?;
                        let mut out = Vec::new();
                        if !is_missing(raw) {
                            let values: Vec<&str> = match separator {
                                Some(sep) => raw.split(sep).map(str::trim).filter(|v| !v.is_empty()).collect(),
                                None => vec![raw],
                            };
                            for value in values {
                                out.push(
                                    category_id(value, how, vocabulary)
                                        .map_err(|m| at(*field, format!("column `{name}`: {m}")))?,
                                );
                            }
                        }
                        row_ids.insert(name, out);
                    }
                    Reader::Bucketized { source, boundaries } => {
                        let x = row_numeric.get(source.as_str()).copied().unwrap_or(f64::NAN);
                        let id = boundaries.partition_point(|b| *b <= x) as i64;
                        row_ids.insert(name, vec![id]);
                    }
                    Reader::Crossed { sources, buckets } => {
                        let lists: Vec<&[i64]> =
                            sources.iter().map(|s| row_ids.get(s.as_str()).map_or(&[][..], Vec::as_slice)).collect();
                        row_ids.insert(name, crossed(&lists, *buckets));
                    }
                }
            }
            if let Some(lf) = label_field {
                let raw = text(lf)?;
                if raw.is_empty() || is_missing(raw) {
                    return Err(at(lf, format!("the label `{}` is missing", data.label)));
                }
                match head {
                    HeadKind::Regression => match raw.parse::<f32>() {
                        Ok(v) if v.is_finite() => values.push(v),
                        _ => {
                            return Err(at(
                                lf,
                                format!("the label `{}` must be a number, found `{}`", data.label, shown(raw)),
                            ))
                        }
                    },
                    _ => {
                        let class = match &class_names {
                            Some(map) => *map.get(raw).ok_or_else(|| {
                                let hint = suggest(raw, map.keys().copied())
                                    .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                                at(lf, format!("label `{}` is not in `label_vocabulary`{hint}", shown(raw)))
                            })?,
                            None => match raw.parse::<i64>() {
                                Ok(c) if (0..n_classes).contains(&c) => c,
                                Ok(c) => {
                                    return Err(at(
                                        lf,
                                        format!(
                                            "label {c} is outside 0..{} (`n_classes` is {n_classes})",
                                            n_classes - 1
                                        ),
                                    ))
                                }
                                Err(_) => {
                                    return Err(at(
                                        lf,
                                        format!(
                                            "label `{}` is not a class id; give class names in `label_vocabulary`",
                                            shown(raw)
                                        ),
                                    ))
                                }
                            },
                        };
                        classes.push(class);
                    }
                }
            }
            Ok(())
        })();
        match parsed {
            Ok(()) => {
                table.rows += 1;
                for (name, list) in row_ids.drain() {
                    let csr = ids.entry(name).or_default();
                    csr.ids.extend(list);
                    csr.ends.push(csr.ids.len());
                }
            }
            Err(e) => {
                if data.bad_rows == BadRows::Error {
                    return Err(e);
                }
                // Undo what the bad row added before it failed.
                for (values, shape, missing) in numeric.values_mut() {
                    values.truncate(table.rows * *shape);
                    missing.retain(|&r| r < table.rows);
                }
                classes.truncate(table.rows);
                values.truncate(table.rows);
                table.skipped += 1;
                if table.first_skipped.is_none() {
                    table.first_skipped = Some(e.to_string());
                }
            }
        }
    }
    if table.rows == 0 {
        if let Some(first) = table.first_skipped.take() {
            return Err(DataError::AllRowsBad {
                path: path.to_owned(),
                skipped: table.skipped,
                first: Box::new(DataError::Header { path: path.to_owned(), message: first }),
            });
        }
        return Err(DataError::NoRows { path: path.to_owned() });
    }
    table.numeric = block(plan, table.rows, numeric);
    for (name, csr) in ids {
        table.ids.insert(name.to_string(), csr.pad());
    }
    table.labels = match (purpose, head) {
        (Purpose::Unlabelled, _) => None,
        (_, HeadKind::Regression) => Some(Labels::Values(values)),
        _ => Some(Labels::Classes(classes)),
    };
    Ok(table)
}

/// Per-column values laid side by side in the plan's numeric order.
fn block(plan: &Plan, rows: usize, mut columns: BTreeMap<&str, (Vec<f32>, usize, Vec<usize>)>) -> NumericBlock {
    let order: Vec<(String, Vec<f32>, usize, Vec<usize>)> = plan
        .numeric_order()
        .into_iter()
        .filter_map(|name| {
            let (values, shape, missing) = columns.remove(name.as_str())?;
            Some((name, values, shape, missing))
        })
        .collect();
    let width = order.iter().map(|c| c.2).sum();
    let mut out = NumericBlock { values: vec![0.0; rows * width], width, columns: Vec::new() };
    let mut missing_rows = Vec::new();
    let mut offset = 0;
    for (name, values, shape, missing) in order {
        for r in 0..rows {
            out.values[r * width + offset..r * width + offset + shape]
                .copy_from_slice(&values[r * shape..(r + 1) * shape]);
        }
        out.columns.push(NumericColumn { name, offset, shape, stats: Stats::default() });
        missing_rows.push(missing);
        offset += shape;
    }
    finish_stats(&mut out, &missing_rows);
    out
}

/// Each column's statistics over the values the file had (rows in `missing[c]` excluded). Sums
/// run over fixed blocks of rows, in parallel, and the blocks' partial sums are added in order,
/// so both ways of reading a file, on any number of cores, give the same bits.
pub(crate) fn finish_stats(block: &mut NumericBlock, missing: &[Vec<usize>]) {
    let width = block.width;
    if width == 0 || block.values.is_empty() {
        return;
    }
    let rows = block.values.len() / width;
    // Which columns each element belongs to, and a bitmap of missing rows for the few columns that have any.
    let owner: Vec<usize> = (0..width)
        .map(|j| block.columns.iter().position(|c| (c.offset..c.offset + c.shape).contains(&j)).unwrap_or(0))
        .collect();
    let gaps: Vec<Option<Vec<u64>>> = missing
        .iter()
        .map(|rows_missing| {
            (!rows_missing.is_empty()).then(|| {
                let mut bits = vec![0u64; rows.div_ceil(64)];
                for &r in rows_missing {
                    bits[r / 64] |= 1 << (r % 64);
                }
                bits
            })
        })
        .collect();
    let blocks: Vec<(usize, usize)> =
        (0..rows).step_by(STATS_ROWS).map(|start| (start, (start + STATS_ROWS).min(rows))).collect();
    let complete = gaps.iter().all(Option::is_none);
    let partial = |&(start, end): &(usize, usize)| -> Vec<Acc> {
        if complete {
            return dense_partial(&block.values[start * width..end * width], width);
        }
        let mut acc = vec![Acc::default(); width];
        for r in start..end {
            let row = &block.values[r * width..(r + 1) * width];
            for (j, (&x, a)) in row.iter().zip(acc.iter_mut()).enumerate() {
                if let Some(bits) = &gaps[owner[j]] {
                    if bits[r / 64] & (1 << (r % 64)) != 0 {
                        continue;
                    }
                }
                a.add(x as f64);
            }
        }
        acc
    };
    let threads = cores().clamp(1, 8);
    let per = blocks.len().div_ceil(threads);
    let partials: Vec<Vec<Acc>> = std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .chunks(per.max(1))
            .map(|chunk| scope.spawn(|| chunk.iter().map(partial).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    merge_stats(block, &partials);
}

/// Rows summed together before the sums are added up, in `finish_stats` and its parts.
pub(crate) const STATS_ROWS: usize = 1 << 14;

/// Each column's statistics from the partial ones of its row groups, in order.
pub(crate) fn merge_stats(block: &mut NumericBlock, partials: &[Vec<Acc>]) {
    for column in &mut block.columns {
        let mut total = Acc::default();
        for p in partials {
            for a in &p[column.offset..column.offset + column.shape] {
                total.merge(a);
            }
        }
        column.stats = total.stats();
    }
}

/// Statistics of a block with no missing values, every column added in row order as `Acc::add`
/// does, with one array per statistic so the columns of a row are added side by side (SIMD).
pub(crate) fn dense_partial(values: &[f32], width: usize) -> Vec<Acc> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor has AVX-512F.
        return unsafe { dense_partial_avx512(values, width) };
    }
    dense_partial_here(values, width)
}

/// `dense_partial` with eight columns a step. The lanes are columns, each added as before, so
/// the sums are the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dense_partial_avx512(values: &[f32], width: usize) -> Vec<Acc> {
    dense_partial_here(values, width)
}

#[inline(always)]
fn dense_partial_here(values: &[f32], width: usize) -> Vec<Acc> {
    let (mut sum, mut sum_sq) = (vec![0.0f64; width], vec![0.0f64; width]);
    let (mut min, mut max) = (vec![f64::INFINITY; width], vec![f64::NEG_INFINITY; width]);
    for row in values.chunks_exact(width) {
        let columns = sum.iter_mut().zip(sum_sq.iter_mut()).zip(min.iter_mut().zip(max.iter_mut()));
        for (&x, ((s, q), (lo, hi))) in row.iter().zip(columns) {
            let x = f64::from(x);
            *s += x;
            *q += x * x;
            *lo = if x < *lo { x } else { *lo };
            *hi = if x > *hi { x } else { *hi };
        }
    }
    let count = (values.len() / width) as u64;
    (0..width).map(|j| Acc { count, sum: sum[j], sum_sq: sum_sq[j], min: min[j], max: max[j] }).collect()
}

#[derive(Clone, Copy)]
pub(crate) struct Acc {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Acc { count: 0, sum: 0.0, sum_sq: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl Acc {
    #[inline]
    fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        self.sum_sq += x * x;
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    fn stats(&self) -> Stats {
        if self.count == 0 {
            return Stats::default();
        }
        let mean = self.sum / self.count as f64;
        let std = (self.sum_sq / self.count as f64 - mean * mean).max(0.0).sqrt();
        Stats { count: self.count, mean, std, min: self.min, max: self.max }
    }
}

/// The cores this process may use, asked once: the answer reads cgroup files each time.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A field as an error message quotes it: long ones cut short.
fn shown(value: &str) -> String {
    const LIMIT: usize = 40;
    match value.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
        None => value.to_string(),
    }
}

fn category_id(value: &str, how: &CategoricalIds, vocabulary: &HashMap<&str, i64>) -> Result<i64, String> {
    match how {
        CategoricalIds::Vocabulary { oov_buckets, .. } => match vocabulary.get(value) {
            Some(id) => Ok(*id),
            None if *oov_buckets > 0 => Ok(vocabulary.len() as i64 + hash::bucket(value, *oov_buckets)),
            None => {
                let hint = suggest(value, vocabulary.keys().copied())
                    .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                Err(format!("`{}` is not in the vocabulary and there are no `oov_buckets`{hint}", shown(value)))
            }
        },
        CategoricalIds::Hash { hash_buckets } => Ok(hash::bucket(value, *hash_buckets)),
        CategoricalIds::Identity { identity } => match value.parse::<i64>() {
            Ok(id) if (0..*identity as i64).contains(&id) => Ok(id),
            _ => Err(format!("`{}` is not an id in 0..{}", shown(value), identity - 1)),
        },
    }
}

/// Every combination of one id from each source, hashed; empty when a source is missing.
fn crossed(lists: &[&[i64]], buckets: u64) -> Vec<i64> {
    let mut combos: Vec<Vec<i64>> = vec![Vec::new()];
    for list in lists {
        combos = combos.iter().flat_map(|c| list.iter().map(move |id| [c.as_slice(), &[*id]].concat())).collect();
    }
    combos.iter().filter(|c| c.len() == lists.len()).map(|c| hash::cross(c, buckets)).collect()
}

/// The 1-based character column where field `index` of `record` starts, or the end of its line.
fn field_column(body: &[u8], record: &csv::ByteRecord, index: usize, delimiter: u8) -> usize {
    let Some(pos) = record.position() else {
        return 1;
    };
    let start = start(body, pos).1;
    let line_end = body[start..].iter().position(|&b| b == b'\n').map_or(body.len(), |i| start + i);
    // Field ranges count unescaped bytes, so walk the raw line for quotes and delimiters.
    let line = &body[start..line_end];
    let mut field = 0;
    let mut quoted = false;
    for (i, &b) in line.iter().enumerate() {
        if field == index {
            return String::from_utf8_lossy(&line[..i]).chars().count() + 1;
        }
        if b == b'"' {
            quoted = !quoted;
        } else if b == delimiter && !quoted {
            field += 1;
        }
    }
    String::from_utf8_lossy(line).trim_end_matches('\r').chars().count() + 1
}

/// The line and byte where a record starts. After a CRLF the csv crate gives the position of
/// the LF, on the line before (BurntSushi/rust-csv#395).
fn start(body: &[u8], pos: &csv::Position) -> (u64, usize) {
    let byte = (pos.byte() as usize).min(body.len());
    if body.get(byte) == Some(&b'\n') {
        (pos.line() + 1, byte + 1)
    } else {
        (pos.line(), byte)
    }
}

fn csv_error(path: &Utf8Path, body: &[u8], e: csv::Error) -> DataError {
    let message = e.to_string();
    match e.position() {
        Some(pos) => {
            let (line, start) = start(body, pos);
            let line_start = body[..start].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            DataError::Field {
                path: path.to_owned(),
                line,
                column: String::from_utf8_lossy(&body[line_start..start]).chars().count() + 1,
                message,
            }
        }
        None => DataError::Header { path: path.to_owned(), message },
    }
}
