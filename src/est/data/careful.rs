//! The careful reader: the csv crate, every field checked, every error with file, line and
//! column. It reads anything the fast reader declines (quotes, multivalent columns, bad
//! fields) and gives the same table, bit for bit, for what both read.

use std::collections::{BTreeMap, HashMap};

use camino::Utf8Path;

use super::error::{shown, DataError, FieldProblem, HeaderProblem};
use super::table::{NumericBlock, NumericColumn};
use super::{hash, IdColumn, Labels, Purpose, Table};
use crate::pipeline::{BadRows, CategoricalIds, FeatureKind};
use crate::plan::{HeadKind, Plan};
use crate::suggestion::suggest;

/// Reads `path` the careful way.
pub fn careful(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Result<Table, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: path.to_owned(), source })?;
    careful_text(plan, path, &bytes, purpose)
}

/// Reads `bytes`, the text of `path` (decompressed, for a compressed file), the careful way.
pub fn careful_text(plan: &Plan, path: &Utf8Path, bytes: &[u8], purpose: Purpose) -> Result<Table, DataError> {
    let body = bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(bytes);
    let data = &plan.data;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(data.delimiter as u8)
        .has_headers(data.header)
        .flexible(true)
        .from_reader(body);
    let file = File { path, body, delimiter: data.delimiter as u8 };
    let names = file.names(&mut reader, plan)?;
    let field = |name: &str| -> Result<usize, DataError> {
        names.iter().position(|n| n == name).ok_or_else(|| DataError::Header {
            path: path.to_owned(),
            problem: HeaderProblem::NoColumn {
                name: name.to_string(),
                suggestion: suggest(name, names.iter().map(String::as_str)).map(str::to_string),
            },
        })
    };
    // Prediction reads neither: its files need not have them.
    let (label, weight) = match purpose {
        Purpose::Labelled => (Some(field(&data.label)?), data.weight.as_deref().map(&field).transpose()?),
        Purpose::Unlabelled => (None, None),
    };
    let readers = readers(plan, field)?;
    let mut rows = Rows::new(plan, &file, &names, label, weight, readers);
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(file.csv_error(e)),
        }
        match rows.read(&record) {
            Ok(()) => rows.keep(),
            Err(e) if data.bad_rows == BadRows::Error => return Err(e),
            Err(e) => rows.skip(e),
        }
    }
    rows.finish(purpose)
}

/// The file's bytes, for positions in messages.
struct File<'b> {
    path: &'b Utf8Path,
    /// After any byte-order mark.
    body: &'b [u8],
    delimiter: u8,
}

impl File<'_> {
    /// The column names: the header's (checked), or the data block's `columns`.
    fn names(&self, reader: &mut csv::Reader<&[u8]>, plan: &Plan) -> Result<Vec<String>, DataError> {
        let data = &plan.data;
        let path = self.path.to_owned();
        let header: Vec<String> = if data.header {
            let raw = reader.byte_headers().map_err(|e| self.csv_error(e))?.clone();
            if raw.is_empty() || (raw.len() == 1 && raw[0].is_empty()) {
                return Err(DataError::Empty { path });
            }
            if let Some(i) = raw.iter().position(|name| std::str::from_utf8(name).is_err()) {
                return Err(DataError::Field {
                    path,
                    line: raw.position().map_or(1, |p| p.line()),
                    column: self.field_column(&raw, i),
                    problem: FieldProblem::NameNotUtf8(i + 1),
                });
            }
            raw.iter().map(|f| String::from_utf8_lossy(f).trim().to_string()).collect()
        } else {
            Vec::new()
        };
        if let Some(name) = crate::pipeline::repeated(&header) {
            return Err(DataError::Header { path, problem: HeaderProblem::Repeated(name.to_string()) });
        }
        let names: Vec<String> = data.columns.clone().unwrap_or(header);
        if data.header && names.is_empty() {
            return Err(DataError::Empty { path });
        }
        Ok(names)
    }

    /// The 1-based character column where field `index` of `record` starts, or the end of
    /// its line.
    fn field_column(&self, record: &csv::ByteRecord, index: usize) -> usize {
        let Some(pos) = record.position() else {
            return 1;
        };
        let body = self.body;
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
            } else if b == self.delimiter && !quoted {
                field += 1;
            }
        }
        String::from_utf8_lossy(line).trim_end_matches('\r').chars().count() + 1
    }

    /// A csv crate error, at its line and column when it has a position.
    fn csv_error(&self, e: csv::Error) -> DataError {
        let path = self.path.to_owned();
        let Some(pos) = e.position() else {
            return DataError::Header { path, problem: HeaderProblem::Csv(e) };
        };
        let (line, start) = start(self.body, pos);
        let line_start = self.body[..start].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&self.body[line_start..start]).chars().count() + 1;
        DataError::Field { path, line, column, problem: FieldProblem::Csv(e) }
    }
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

/// How one declared feature reads its part of a row.
enum Reader<'p> {
    Numeric { field: usize, shape: usize, default: Option<f64> },
    Categorical { field: usize, ids: &'p CategoricalIds, vocabulary: HashMap<&'p str, i64>, separator: Option<&'p str> },
    Bucketized { source: String, boundaries: &'p [f64] },
    Crossed { sources: &'p [String], buckets: u64 },
}

/// Each feature's reader, the derived ones (which read what the plain ones produced) last.
fn readers<'p>(
    plan: &'p Plan,
    field: impl Fn(&str) -> Result<usize, DataError>,
) -> Result<Vec<(&'p str, Reader<'p>)>, DataError> {
    let mut readers = Vec::new();
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
    readers.sort_by_key(|(_, r)| match r {
        Reader::Numeric { .. } | Reader::Categorical { .. } => 0,
        Reader::Bucketized { .. } => 1,
        Reader::Crossed { .. } => 2,
    });
    Ok(readers)
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
        IdColumn { ids: ids.into(), width }
    }
}

/// The columns as the rows read so far filled them.
struct Rows<'p, 'f> {
    plan: &'p Plan,
    file: &'f File<'f>,
    names: &'f [String],
    label: Option<usize>,
    /// The weight's field, when the rows are read for training or evaluation and weighted.
    weight: Option<usize>,
    readers: Vec<(&'p str, Reader<'p>)>,
    class_names: Option<HashMap<&'p str, i64>>,
    /// Per numeric column: values, shape, and the rows where the value was missing.
    numeric: BTreeMap<&'p str, (Vec<f32>, usize, Vec<usize>)>,
    ids: BTreeMap<&'p str, Csr>,
    classes: Vec<i64>,
    values: Vec<f32>,
    weights: Vec<f32>,
    table: Table,
    first_error: Option<DataError>,
    /// The row being read: its numeric values (the first of each) and its ids.
    row_numeric: HashMap<&'p str, f64>,
    row_ids: HashMap<&'p str, Vec<i64>>,
}

impl<'p, 'f> Rows<'p, 'f> {
    fn new(
        plan: &'p Plan,
        file: &'f File<'f>,
        names: &'f [String],
        label: Option<usize>,
        weight: Option<usize>,
        readers: Vec<(&'p str, Reader<'p>)>,
    ) -> Self {
        let class_names = plan
            .data
            .label_vocabulary
            .as_ref()
            .map(|v| v.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect());
        Rows {
            plan,
            file,
            names,
            label,
            weight,
            readers,
            class_names,
            numeric: BTreeMap::new(),
            ids: BTreeMap::new(),
            classes: Vec::new(),
            values: Vec::new(),
            weights: Vec::new(),
            table: Table::default(),
            first_error: None,
            row_numeric: HashMap::new(),
            row_ids: HashMap::new(),
        }
    }

    /// Reads one record into the columns (its ids wait in `row_ids` for `keep`).
    fn read(&mut self, record: &csv::ByteRecord) -> Result<(), DataError> {
        let at = Fields { file: self.file, record, names: self.names, missing: &self.plan.data.missing };
        if record.len() != self.names.len() {
            let column = record.len().min(self.names.len());
            return Err(at.error(column, FieldProblem::FieldCount { expected: self.names.len(), found: record.len() }));
        }
        self.row_numeric.clear();
        self.row_ids.clear();
        for (name, reader) in &self.readers {
            match reader {
                Reader::Numeric { field, shape, default } => {
                    let raw = at.text(*field)?;
                    let parts = at.numbers(*field, raw, name, *shape, *default)?;
                    self.row_numeric.insert(name, parts[0] as f64);
                    let column = self.numeric.entry(name).or_insert_with(|| (Vec::new(), *shape, Vec::new()));
                    column.0.extend(parts);
                    if at.is_missing(raw) {
                        column.2.push(self.table.rows);
                    }
                }
                Reader::Categorical { field, ids: how, vocabulary, separator } => {
                    let raw = at.text(*field)?;
                    let mut out = Vec::new();
                    if !at.is_missing(raw) {
                        let values: Vec<&str> = match separator {
                            Some(sep) => raw.split(sep).map(str::trim).filter(|v| !v.is_empty()).collect(),
                            None => vec![raw],
                        };
                        for value in values {
                            out.push(category_id(name, value, how, vocabulary).map_err(|p| at.error(*field, p))?);
                        }
                    }
                    self.row_ids.insert(name, out);
                }
                Reader::Bucketized { source, boundaries } => {
                    let x = self.row_numeric.get(source.as_str()).copied().unwrap_or(f64::NAN);
                    self.row_ids.insert(name, vec![boundaries.partition_point(|b| *b <= x) as i64]);
                }
                Reader::Crossed { sources, buckets } => {
                    let lists: Vec<&[i64]> =
                        sources.iter().map(|s| self.row_ids.get(s.as_str()).map_or(&[][..], Vec::as_slice)).collect();
                    self.row_ids.insert(name, crossed(&lists, *buckets));
                }
            }
        }
        if let Some(field) = self.label {
            self.read_label(&at, field)?;
        }
        if let Some(field) = self.weight {
            self.read_weight(&at, field)?;
        }
        Ok(())
    }

    /// The row's weight: a finite number, not negative.
    fn read_weight(&mut self, at: &Fields, field: usize) -> Result<(), DataError> {
        let column = self.names[field].clone();
        let raw = at.text(field)?;
        if raw.is_empty() || at.is_missing(raw) {
            return Err(at.error(field, FieldProblem::WeightMissing { column }));
        }
        let problem = match raw.parse::<f32>() {
            Ok(w) if w.is_finite() && w >= 0.0 => {
                self.weights.push(w);
                return Ok(());
            }
            Ok(w) if w.is_finite() => FieldProblem::WeightNegative { column, found: shown(raw) },
            _ => FieldProblem::WeightNotANumber { column, found: shown(raw) },
        };
        Err(at.error(field, problem))
    }

    /// The row's label: a number for regressors, a class id for classifiers.
    fn read_label(&mut self, at: &Fields, field: usize) -> Result<(), DataError> {
        let label = &self.plan.data.label;
        let raw = at.text(field)?;
        if raw.is_empty() || at.is_missing(raw) {
            return Err(at.error(field, FieldProblem::LabelMissing(label.clone())));
        }
        if self.plan.model.head.kind == HeadKind::Regression {
            match raw.parse::<f32>() {
                Ok(v) if v.is_finite() => self.values.push(v),
                _ => {
                    let problem = FieldProblem::LabelNotANumber { label: label.clone(), found: shown(raw) };
                    return Err(at.error(field, problem));
                }
            }
            return Ok(());
        }
        let n_classes = self.plan.model.head.n_classes.unwrap_or(0) as i64;
        let class = match &self.class_names {
            Some(map) => *map.get(raw).ok_or_else(|| {
                let suggestion = suggest(raw, map.keys().copied()).map(str::to_string);
                at.error(field, FieldProblem::LabelNotInVocabulary { found: shown(raw), suggestion })
            })?,
            None => match raw.parse::<i64>() {
                Ok(c) if (0..n_classes).contains(&c) => c,
                Ok(class) => return Err(at.error(field, FieldProblem::LabelOutOfRange { class, n_classes })),
                Err(_) => return Err(at.error(field, FieldProblem::LabelNotAClassId(shown(raw)))),
            },
        };
        self.classes.push(class);
        Ok(())
    }

    /// The row read is good: its ids join their columns.
    fn keep(&mut self) {
        self.table.rows += 1;
        for (name, list) in self.row_ids.drain() {
            let csr = self.ids.entry(name).or_default();
            csr.ids.extend(list);
            csr.ends.push(csr.ids.len());
        }
    }

    /// The row read is bad and `bad_rows = skip`: undo what it added before it failed.
    fn skip(&mut self, e: DataError) {
        let rows = self.table.rows;
        for (values, shape, missing) in self.numeric.values_mut() {
            values.truncate(rows * *shape);
            missing.retain(|&r| r < rows);
        }
        self.classes.truncate(rows);
        self.values.truncate(rows);
        self.weights.truncate(rows);
        self.table.skipped += 1;
        if self.first_error.is_none() {
            self.table.first_skipped = Some(e.to_string());
            self.first_error = Some(e);
        }
    }

    /// The table, once every record is read.
    fn finish(self, purpose: Purpose) -> Result<Table, DataError> {
        let path = self.file.path.to_owned();
        let mut table = self.table;
        if table.rows == 0 {
            return Err(match self.first_error {
                Some(first) => DataError::AllRowsBad { path, skipped: table.skipped, first: Box::new(first) },
                None => DataError::NoRows { path },
            });
        }
        table.numeric = block(self.plan, table.rows, self.numeric);
        for (name, csr) in self.ids {
            table.ids.insert(name.to_string(), csr.pad());
        }
        table.labels = match (purpose, self.plan.model.head.kind) {
            (Purpose::Unlabelled, _) => None,
            (_, HeadKind::Regression) => Some(Labels::Values(self.values)),
            _ => Some(Labels::Classes(self.classes)),
        };
        table.weights = self.weight.map(|_| self.weights);
        Ok(table)
    }
}

/// One record's fields, and how to say where one of them is wrong.
struct Fields<'r> {
    file: &'r File<'r>,
    record: &'r csv::ByteRecord,
    names: &'r [String],
    missing: &'r [String],
}

impl Fields<'_> {
    fn error(&self, column: usize, problem: FieldProblem) -> DataError {
        let line = self.record.position().map_or(0, |p| start(self.file.body, p).0);
        let column = self.file.field_column(self.record, column);
        DataError::Field { path: self.file.path.to_owned(), line, column, problem }
    }

    /// Field `i`, trimmed.
    fn text(&self, i: usize) -> Result<&str, DataError> {
        std::str::from_utf8(&self.record[i])
            .map(str::trim)
            .map_err(|_| self.error(i, FieldProblem::NotUtf8(self.names[i].clone())))
    }

    fn is_missing(&self, s: &str) -> bool {
        self.missing.iter().any(|m| m == s)
    }

    /// The `shape` numbers of field `i`, `raw`, read by feature `feature`: the default for a
    /// missing value.
    fn numbers(
        &self,
        i: usize,
        raw: &str,
        feature: &str,
        shape: usize,
        default: Option<f64>,
    ) -> Result<Vec<f32>, DataError> {
        let column = || self.names[i].clone();
        if self.is_missing(raw) {
            return match default {
                Some(d) => Ok(vec![d as f32; shape]),
                None => {
                    let problem =
                        FieldProblem::MissingWithoutDefault { column: column(), feature: feature.to_string() };
                    Err(self.error(i, problem))
                }
            };
        }
        if raw.is_empty() {
            return Err(self.error(i, FieldProblem::Empty { column: column(), feature: feature.to_string() }));
        }
        match raw.split_whitespace().map(str::parse::<f32>).collect::<Result<Vec<f32>, _>>() {
            Ok(p) if p.len() == shape && p.iter().all(|x| x.is_finite()) => Ok(p),
            Ok(p) if p.len() != shape => {
                Err(self.error(i, FieldProblem::ValueCount { column: column(), found: p.len(), expected: shape }))
            }
            _ => Err(self.error(i, FieldProblem::NotANumber { column: column(), found: shown(raw) })),
        }
    }
}

/// A categorical value's id as `how` gives it.
pub(super) fn category_id(
    feature: &str,
    value: &str,
    how: &CategoricalIds,
    vocabulary: &HashMap<&str, i64>,
) -> Result<i64, FieldProblem> {
    match how {
        CategoricalIds::Vocabulary { oov_buckets, .. } => match vocabulary.get(value) {
            Some(id) => Ok(*id),
            None if *oov_buckets > 0 => Ok(vocabulary.len() as i64 + hash::bucket(value, *oov_buckets)),
            None => Err(FieldProblem::NotInVocabulary {
                feature: feature.to_string(),
                value: shown(value),
                suggestion: suggest(value, vocabulary.keys().copied()).map(str::to_string),
            }),
        },
        CategoricalIds::Hash { hash_buckets } => Ok(hash::bucket(value, *hash_buckets)),
        CategoricalIds::Identity { identity } => match value.parse::<i64>() {
            Ok(id) if (0..*identity as i64).contains(&id) => Ok(id),
            _ => Err(FieldProblem::NotAnId { feature: feature.to_string(), value: shown(value), max: identity - 1 }),
        },
    }
}

/// Every combination of one id from each source, hashed; empty when a source is missing.
pub(super) fn crossed(lists: &[&[i64]], buckets: u64) -> Vec<i64> {
    let mut combos: Vec<Vec<i64>> = vec![Vec::new()];
    for list in lists {
        combos = combos.iter().flat_map(|c| list.iter().map(move |id| [c.as_slice(), &[*id]].concat())).collect();
    }
    combos.iter().filter(|c| c.len() == lists.len()).map(|c| hash::cross(c, buckets)).collect()
}

/// Per-column values laid side by side in the plan's numeric order.
pub(super) fn block(
    plan: &Plan,
    rows: usize,
    mut columns: BTreeMap<&str, (Vec<f32>, usize, Vec<usize>)>,
) -> NumericBlock {
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
        out.columns.push(NumericColumn { name, offset, shape, ..NumericColumn::default() });
        missing_rows.push(missing);
        offset += shape;
    }
    super::stats::finish_stats(&mut out, &missing_rows);
    out
}
