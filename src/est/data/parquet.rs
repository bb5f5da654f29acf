//! Parquet files: the columns the plan reads, one row group of one column at a time on every
//! core, from Arrow arrays straight into the table's columns. String columns are read as
//! dictionaries, so each distinct value of a row group is hashed or looked up once. Nulls (and
//! NaN) are missing values; a column whose type cannot be its feature's is named with both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Field, Schema};
use camino::Utf8Path;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::careful::{block, category_id, crossed};
use super::error::{shown, DataError, FieldProblem, HeaderProblem};
use super::{cores, derive, IdColumn, Labels, Purpose, Table};
use crate::pipeline::{BadRows, CategoricalIds, FeatureKind};
use crate::plan::{HeadKind, Plan};
use crate::suggestion::suggest;

/// A Parquet column as the checker and the reader see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub kind: Kind,
    /// Its Arrow type, as messages name it.
    pub found: String,
}

/// What a Parquet column holds, as far as features care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Floating-point numbers.
    Float,
    /// Integers.
    Integer,
    /// Strings, plain or dictionary-encoded.
    Text,
    /// Lists of numbers.
    Numbers,
    /// Anything else (booleans, dates, structs, ...).
    Other,
}

/// What a feature, the label or the weight needs of its column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// One number a row.
    Number,
    /// `shape` numbers a row.
    Numbers,
    /// Values to hash or look up: strings or integers.
    Values,
    /// Ids: integers (or strings of them).
    Ids,
    /// A class: an integer id, or a name in `label_vocabulary`.
    Class,
}

impl Need {
    /// Whether a column of `kind` can be read this way.
    pub fn takes(self, kind: Kind) -> bool {
        match self {
            Need::Number => matches!(kind, Kind::Float | Kind::Integer),
            Need::Numbers => kind == Kind::Numbers,
            Need::Values | Need::Ids | Need::Class => matches!(kind, Kind::Text | Kind::Integer),
        }
    }

    /// The types that would do, as the end of a sentence.
    pub fn expected(self) -> &'static str {
        match self {
            Need::Number => "it needs a floating-point or integer column",
            Need::Numbers => "it needs a list of numbers",
            Need::Values => "it needs a string or integer column",
            Need::Ids => "it needs an integer column (or strings of integers)",
            Need::Class => "it needs an integer column of class ids, or strings in `label_vocabulary`",
        }
    }
}

fn kind_of(t: &DataType) -> Kind {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Kind::Float,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Kind::Integer,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
        DataType::Dictionary(_, value) if kind_of(value) == Kind::Text => Kind::Text,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
            if matches!(kind_of(f.data_type()), Kind::Float | Kind::Integer) =>
        {
            Kind::Numbers
        }
        _ => Kind::Other,
    }
}

/// The columns of a Parquet file, from its footer; the reason is a sentence.
pub fn schema(path: &Utf8Path) -> Result<Vec<Column>, String> {
    let (_, meta) = open(path).map_err(|e| reason_of(&e))?;
    Ok(columns(meta.schema()))
}

fn columns(schema: &Schema) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column { name: f.name().clone(), kind: kind_of(f.data_type()), found: f.data_type().to_string() })
        .collect()
}

fn reason_of(e: &DataError) -> String {
    match e {
        DataError::Parquet { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

fn open(path: &Utf8Path) -> Result<(File, ArrowReaderMetadata), DataError> {
    let file = File::open(path).map_err(|source| DataError::Read { path: path.to_owned(), source })?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| DataError::Parquet {
        path: path.to_owned(),
        row_group: None,
        reason: plain(&e.to_string()),
    })?;
    Ok((file, meta))
}

/// The Parquet crate's message without its prefix.
fn plain(message: &str) -> String {
    const PREFIXES: [&str; 4] = ["Parquet error: ", "Parquet argument error: ", "External: ", "EOF: "];
    let mut m = message;
    while let Some(rest) = PREFIXES.iter().find_map(|p| m.strip_prefix(p)) {
        m = rest;
    }
    m.to_string()
}

/// What is read from one column, and into what.
#[derive(Clone)]
enum Task<'p> {
    Numeric {
        feature: &'p str,
        shape: usize,
        default: Option<f64>,
    },
    Categorical {
        feature: &'p str,
        ids: &'p CategoricalIds,
        vocabulary: Arc<HashMap<&'p str, i64>>,
        separator: Option<&'p str>,
    },
    Label,
    Weight,
}

impl Task<'_> {
    fn need(&self, plan: &Plan) -> Need {
        match self {
            Task::Numeric { shape: 1, .. } | Task::Weight => Need::Number,
            Task::Numeric { .. } => Need::Numbers,
            Task::Categorical { ids: CategoricalIds::Identity { .. }, .. } => Need::Ids,
            Task::Categorical { .. } => Need::Values,
            Task::Label if plan.model.head.kind == HeadKind::Regression => Need::Number,
            Task::Label => Need::Class,
        }
    }

    fn reader(&self) -> String {
        match self {
            Task::Numeric { feature, .. } => format!("numeric column `{feature}`"),
            Task::Categorical { feature, .. } => format!("categorical column `{feature}`"),
            Task::Label => "the label".into(),
            Task::Weight => "the weight".into(),
        }
    }
}

/// The columns and what each feeds, in the plan's order; errors for a column the file lacks or
/// whose type the reader cannot take.
fn tasks<'p>(
    plan: &'p Plan,
    path: &Utf8Path,
    schema: &[Column],
    purpose: Purpose,
) -> Result<Vec<(usize, Task<'p>)>, DataError> {
    let at = |name: &str| -> Result<usize, DataError> {
        schema.iter().position(|c| c.name == name).ok_or_else(|| DataError::Header {
            path: path.to_owned(),
            problem: HeaderProblem::NoColumn {
                name: name.to_string(),
                suggestion: suggest(name, schema.iter().map(|c| c.name.as_str())).map(str::to_string),
            },
        })
    };
    let mut out = Vec::new();
    for f in &plan.features {
        let name = f.feature.name.as_str();
        match &f.feature.kind {
            FeatureKind::Numeric { column, default, shape, .. } => {
                out.push((at(column)?, Task::Numeric { feature: name, shape: *shape, default: *default }));
            }
            FeatureKind::Categorical { column, ids, separator } => {
                let vocabulary = match ids {
                    CategoricalIds::Vocabulary { vocabulary, .. } => {
                        vocabulary.iter().enumerate().map(|(i, v)| (v.as_str(), i as i64)).collect()
                    }
                    _ => HashMap::new(),
                };
                let task = Task::Categorical {
                    feature: name,
                    ids,
                    vocabulary: Arc::new(vocabulary),
                    separator: separator.as_deref(),
                };
                out.push((at(column)?, task));
            }
            _ => {}
        }
    }
    if purpose == Purpose::Labelled {
        out.push((at(&plan.data.label)?, Task::Label));
        if let Some(w) = &plan.data.weight {
            out.push((at(w)?, Task::Weight));
        }
    }
    for (i, task) in &out {
        let need = task.need(plan);
        if !need.takes(schema[*i].kind) {
            return Err(DataError::ColumnType {
                path: path.to_owned(),
                column: schema[*i].name.clone(),
                found: schema[*i].found.clone(),
                reader: task.reader(),
                expected: need.expected(),
            });
        }
    }
    Ok(out)
}

/// One column of one row group, read.
enum Part {
    Numbers { values: Vec<f32>, missing: Vec<usize> },
    Ids(Vec<i64>),
    Lists(Vec<Vec<i64>>),
    Classes(Vec<i64>),
    Values(Vec<f32>),
    Weights(Vec<f32>),
}

/// A part, and the rows of it that were bad (row in the group, why), in order.
type Read = (Part, Vec<(usize, FieldProblem)>);

/// Reads `path` as the plan's data block describes.
pub fn load(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Result<Table, DataError> {
    let (_, meta) = open(path)?;
    let schema = columns(meta.schema());
    let tasks = tasks(plan, path, &schema, purpose)?;
    // Strings as dictionaries: each distinct value's id is worked out once per row group.
    let hint: Vec<Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Dictionary(Box::new(DataType::Int32), Box::new(f.data_type().clone()))),
            _ => f.as_ref().clone(),
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(hint)));
    let meta = ArrowReaderMetadata::try_new(meta.metadata().clone(), options).map_err(|e| DataError::Parquet {
        path: path.to_owned(),
        row_group: None,
        reason: plain(&e.to_string()),
    })?;
    let groups: Vec<usize> = meta.metadata().row_groups().iter().map(|g| g.num_rows().max(0) as usize).collect();
    let jobs: Vec<(usize, usize)> = (0..groups.len()).flat_map(|g| (0..tasks.len()).map(move |t| (g, t))).collect();
    let next = AtomicUsize::new(0);
    let skip = plan.data.bad_rows == BadRows::Skip;
    let threads = cores().clamp(1, 8).min(jobs.len()).max(1);
    let work = || -> Result<Vec<(usize, Read)>, DataError> {
        let mut done = Vec::new();
        loop {
            let j = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(g, t)) = jobs.get(j) else { return Ok(done) };
            let (column, task) = &tasks[t];
            // A descriptor of its own: a clone would share the file offset the reader seeks.
            let file = File::open(path).map_err(|source| DataError::Read { path: path.to_owned(), source })?;
            let failed = |e: &dyn std::fmt::Display| DataError::Parquet {
                path: path.to_owned(),
                row_group: Some(g),
                reason: plain(&e.to_string()),
            };
            let mask = ProjectionMask::roots(meta.parquet_schema(), [*column]);
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                .with_projection(mask)
                .with_row_groups(vec![g])
                .with_batch_size(groups[g].max(1))
                .build()
                .map_err(|e| failed(&e))?;
            let mut arrays = Vec::new();
            for batch in reader {
                arrays.push(batch.map_err(|e| failed(&e))?.column(0).clone());
            }
            let rows: usize = arrays.iter().map(|a| a.len()).sum();
            if rows != groups[g] {
                let name = &schema[*column].name;
                return Err(failed(&format!("column `{name}` holds {rows} rows of the group's {}", groups[g])));
            }
            let read = read_part(plan, task, &arrays, skip);
            done.push((j, read));
        }
    };
    let mut reads: Vec<Option<Read>> = (0..jobs.len()).map(|_| None).collect();
    let results: Vec<Result<Vec<(usize, Read)>, DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Ok(Vec::new()))).collect()
    });
    for result in results {
        for (j, read) in result? {
            reads[j] = Some(read);
        }
    }
    assemble(plan, path, purpose, &tasks, &groups, reads)
}

/// Reads one column of one row group into a part.
fn read_part(plan: &Plan, task: &Task, arrays: &[ArrayRef], skip: bool) -> Read {
    let mut bad = Vec::new();
    let mut row = 0;
    let part = match task {
        Task::Numeric { feature, shape, default } => {
            let (mut values, mut missing) = (Vec::new(), Vec::new());
            for array in arrays {
                numbers(array, *shape, &mut |i, got: Number| match got {
                    Ok(Some(xs)) => values.extend(xs.iter().map(|&x| x as f32)),
                    Ok(None) => {
                        missing.push(row + i);
                        match default {
                            Some(d) => values.extend(std::iter::repeat_n(*d as f32, *shape)),
                            None => {
                                values.extend(std::iter::repeat_n(0.0, *shape));
                                bad.push((
                                    row + i,
                                    FieldProblem::MissingWithoutDefault {
                                        column: String::new(),
                                        feature: feature.to_string(),
                                    },
                                ));
                            }
                        }
                    }
                    Err(p) => {
                        values.extend(std::iter::repeat_n(0.0, *shape));
                        bad.push((row + i, p));
                    }
                });
                row += array.len();
                if !skip && !bad.is_empty() {
                    break;
                }
            }
            Part::Numbers { values, missing }
        }
        Task::Categorical { feature, ids, vocabulary, separator } => {
            let missing = &plan.data.missing;
            let is_missing = |value: &str| missing.iter().any(|m| m == value);
            if let Some(sep) = separator {
                let many = |value: &str| -> Result<Vec<i64>, FieldProblem> {
                    if is_missing(value.trim()) {
                        return Ok(Vec::new());
                    }
                    value
                        .trim()
                        .split(sep)
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| category_id(feature, v, ids, vocabulary))
                        .collect()
                };
                let mut lists: Vec<Vec<i64>> = Vec::new();
                for array in arrays {
                    let start = row;
                    values(array, &many, Vec::new(), &mut |i, got| match got {
                        Ok(ids) => lists.push(ids),
                        Err(p) => {
                            lists.push(Vec::new());
                            bad.push((start + i, p));
                        }
                    });
                    row += array.len();
                }
                Part::Lists(lists)
            } else {
                let one = |value: &str| -> Result<i64, FieldProblem> {
                    let value = value.trim();
                    if is_missing(value) {
                        return Ok(-1);
                    }
                    category_id(feature, value, ids, vocabulary)
                };
                let mut out: Vec<i64> = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
                for array in arrays {
                    let start = row;
                    values(array, &one, -1, &mut |i, got| match got {
                        Ok(id) => out.push(id),
                        Err(p) => {
                            out.push(-1);
                            bad.push((start + i, p));
                        }
                    });
                    row += array.len();
                }
                Part::Ids(out)
            }
        }
        Task::Label if plan.model.head.kind == HeadKind::Regression => {
            let label = &plan.data.label;
            let mut out = Vec::new();
            for array in arrays {
                numbers(array, 1, &mut |i, got| match got {
                    Ok(Some(xs)) => out.push(xs[0] as f32),
                    Ok(None) => {
                        out.push(0.0);
                        bad.push((row + i, FieldProblem::LabelMissing(label.clone())));
                    }
                    Err(_) => {
                        out.push(0.0);
                        let found = "a value that is not finite".to_string();
                        bad.push((row + i, FieldProblem::LabelNotANumber { label: label.clone(), found }));
                    }
                });
                row += array.len();
            }
            Part::Values(out)
        }
        Task::Label => {
            let label = &plan.data.label;
            let n_classes = plan.model.head.n_classes.unwrap_or(0) as i64;
            let names: Option<HashMap<&str, i64>> = plan
                .data
                .label_vocabulary
                .as_ref()
                .map(|v| v.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect());
            let class = |raw: &str| -> Result<i64, FieldProblem> {
                let raw = raw.trim();
                if raw.is_empty() || plan.data.missing.iter().any(|m| m == raw) {
                    return Err(FieldProblem::LabelMissing(label.clone()));
                }
                let id = match &names {
                    Some(map) => *map.get(raw).ok_or_else(|| FieldProblem::LabelNotInVocabulary {
                        found: shown(raw),
                        suggestion: suggest(raw, map.keys().copied()).map(str::to_string),
                    })?,
                    None => match raw.parse::<i64>() {
                        Ok(c) if (0..n_classes).contains(&c) => c,
                        Ok(class) => return Err(FieldProblem::LabelOutOfRange { class, n_classes }),
                        Err(_) => return Err(FieldProblem::LabelNotAClassId(shown(raw))),
                    },
                };
                Ok(id)
            };
            let mut out = Vec::new();
            for array in arrays {
                let start = row;
                values(array, &class, -1, &mut |i, got| match got {
                    Ok(id) if id >= 0 => out.push(id),
                    Ok(_) => {
                        out.push(0);
                        bad.push((start + i, FieldProblem::LabelMissing(label.clone())));
                    }
                    Err(p) => {
                        out.push(0);
                        bad.push((start + i, p));
                    }
                });
                row += array.len();
            }
            Part::Classes(out)
        }
        Task::Weight => {
            let column = plan.data.weight.clone().unwrap_or_default();
            let mut out = Vec::new();
            for array in arrays {
                numbers(array, 1, &mut |i, got| match got {
                    Ok(Some(xs)) if xs[0] >= 0.0 => out.push(xs[0] as f32),
                    Ok(Some(xs)) => {
                        out.push(0.0);
                        bad.push((
                            row + i,
                            FieldProblem::WeightNegative { column: column.clone(), found: xs[0].to_string() },
                        ));
                    }
                    Ok(None) => {
                        out.push(0.0);
                        bad.push((row + i, FieldProblem::WeightMissing { column: column.clone() }));
                    }
                    Err(_) => {
                        out.push(0.0);
                        let found = "a value that is not finite".to_string();
                        bad.push((row + i, FieldProblem::WeightNotANumber { column: column.clone(), found }));
                    }
                });
                row += array.len();
            }
            Part::Weights(out)
        }
    };
    (part, bad)
}

/// A row's numbers: `None` when missing.
type Number<'a> = Result<Option<&'a [f64]>, FieldProblem>;

/// Calls `each(row, numbers)` for every row of a numeric (or list-of-numbers) array: `None` for
/// a null or NaN, an error for an infinite value or a list of the wrong length.
fn numbers(array: &ArrayRef, shape: usize, each: &mut dyn FnMut(usize, Number)) {
    let not_a_number = |x: f64| FieldProblem::NotANumber { column: String::new(), found: x.to_string() };
    if let Some(flat) = flat_numbers(array.as_ref()) {
        let nulls = array.logical_nulls();
        for (i, &x) in flat.iter().enumerate() {
            if nulls.as_ref().is_some_and(|n| n.is_null(i)) || x.is_nan() {
                each(i, Ok(None));
            } else if !x.is_finite() {
                each(i, Err(not_a_number(x)));
            } else if shape != 1 {
                each(i, Err(FieldProblem::ValueCount { column: String::new(), found: 1, expected: shape }));
            } else {
                each(i, Ok(Some(&[x])));
            }
        }
        return;
    }
    let nulls = array.logical_nulls();
    let lists: Option<(Vec<usize>, ArrayRef)> = if let Some(l) = array.as_list_opt::<i32>() {
        Some((l.value_offsets().iter().map(|&o| o as usize).collect(), l.values().clone()))
    } else if let Some(l) = array.as_list_opt::<i64>() {
        Some((l.value_offsets().iter().map(|&o| o as usize).collect(), l.values().clone()))
    } else {
        array.as_fixed_size_list_opt().map(|l| {
            let n = l.value_length() as usize;
            ((0..=l.len()).map(|i| l.value_offset_at(0) + i * n).collect(), l.values().clone())
        })
    };
    let Some((offsets, inner)) = lists else { return };
    let inner_nulls = inner.logical_nulls();
    let Some(flat) = flat_numbers(inner.as_ref()) else { return };
    for i in 0..array.len() {
        let (a, b) = (offsets[i], offsets[i + 1]);
        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            each(i, Ok(None));
            continue;
        }
        let xs = &flat[a..b];
        if (a..b).any(|k| inner_nulls.as_ref().is_some_and(|n| n.is_null(k))) || xs.iter().any(|x| x.is_nan()) {
            each(i, Ok(None));
        } else if let Some(&x) = xs.iter().find(|x| !x.is_finite()) {
            each(i, Err(not_a_number(x)));
        } else if xs.len() != shape {
            each(i, Err(FieldProblem::ValueCount { column: String::new(), found: xs.len(), expected: shape }));
        } else {
            each(i, Ok(Some(xs)));
        }
    }
}

/// A primitive numeric array's values as f64 (nulls as whatever the buffer holds).
fn flat_numbers(array: &dyn Array) -> Option<Vec<f64>> {
    macro_rules! each {
        ($($t:ty),*) => {
            $(if let Some(a) = array.as_primitive_opt::<$t>() {
                return Some(a.values().iter().map(|&x| x as f64).collect());
            })*
        };
    }
    each!(
        Float32Type,
        Float64Type,
        Int8Type,
        Int16Type,
        Int32Type,
        Int64Type,
        UInt8Type,
        UInt16Type,
        UInt32Type,
        UInt64Type
    );
    None
}

/// Calls `each(row, f(value))` for every row of a string or integer array, with `none` for a
/// null; a dictionary's values go through `f` once each.
fn values<T: Clone>(
    array: &ArrayRef,
    f: &dyn Fn(&str) -> Result<T, FieldProblem>,
    none: T,
    each: &mut dyn FnMut(usize, Result<T, FieldProblem>),
) {
    let nulls = array.logical_nulls();
    let null = |i: usize| nulls.as_ref().is_some_and(|n| n.is_null(i));
    let again = |got: &Result<T, FieldProblem>| match got {
        Ok(v) => Ok(v.clone()),
        Err(p) => Err(clone_problem(p)),
    };
    if let Some(dict) = array.as_any_dictionary_opt() {
        let values = dict.values();
        let value_nulls = values.logical_nulls();
        let mut seen: Vec<Option<Result<T, FieldProblem>>> = (0..values.len()).map(|_| None).collect();
        let texts = Texts::of(values.as_ref());
        for (i, key) in dict.normalized_keys().into_iter().enumerate() {
            if null(i) || value_nulls.as_ref().is_some_and(|n| n.is_null(key)) {
                each(i, Ok(none.clone()));
                continue;
            }
            let got = seen[key].get_or_insert_with(|| texts.with(key, f, &none));
            each(i, again(got));
        }
        return;
    }
    let texts = Texts::of(array.as_ref());
    for i in 0..array.len() {
        if null(i) {
            each(i, Ok(none.clone()));
        } else {
            each(i, texts.with(i, f, &none));
        }
    }
}

/// A string or integer array's values, as text.
enum Texts<'a> {
    Small(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    Integers(Vec<i64>),
    None,
}

impl<'a> Texts<'a> {
    fn of(array: &'a dyn Array) -> Texts<'a> {
        if let Some(a) = array.as_string_opt::<i32>() {
            return Texts::Small(a);
        }
        if let Some(a) = array.as_string_opt::<i64>() {
            return Texts::Large(a);
        }
        if let Some(a) = array.as_string_view_opt() {
            return Texts::View(a);
        }
        match flat_numbers(array) {
            Some(_) if kind_of(array.data_type()) == Kind::Integer => Texts::Integers(integers(array)),
            _ => Texts::None,
        }
    }

    fn with<T: Clone>(
        &self,
        i: usize,
        f: &dyn Fn(&str) -> Result<T, FieldProblem>,
        none: &T,
    ) -> Result<T, FieldProblem> {
        match self {
            Texts::Small(a) => f(a.value(i)),
            Texts::Large(a) => f(a.value(i)),
            Texts::View(a) => f(a.value(i)),
            Texts::Integers(v) => f(v[i].to_string().as_str()),
            Texts::None => Ok(none.clone()),
        }
    }
}

/// An integer array's values as i64, exactly.
fn integers(array: &dyn Array) -> Vec<i64> {
    macro_rules! each {
        ($($t:ty),*) => {
            $(if let Some(a) = array.as_primitive_opt::<$t>() {
                return a.values().iter().map(|&x| x as i64).collect();
            })*
        };
    }
    each!(Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type);
    Vec::new()
}

/// The table from every part, row group by row group: bad rows are an error naming the first,
/// or under `bad_rows = skip` left out of every column.
fn assemble(
    plan: &Plan,
    path: &Utf8Path,
    purpose: Purpose,
    tasks: &[(usize, Task)],
    groups: &[usize],
    reads: Vec<Option<Read>>,
) -> Result<Table, DataError> {
    let skip = plan.data.bad_rows == BadRows::Skip;
    let mut reads = reads.into_iter();
    let mut numeric: BTreeMap<&str, (Vec<f32>, usize, Vec<usize>)> = BTreeMap::new();
    let mut lists: HashMap<&str, Vec<Vec<i64>>> = HashMap::new();
    let mut single: HashMap<&str, Vec<i64>> = HashMap::new();
    let (mut classes, mut values, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    let mut table = Table::default();
    let mut first_row = 0u64;
    let mut first_error: Option<DataError> = None;
    for (g, &group_rows) in groups.iter().enumerate() {
        let parts: Vec<Read> =
            tasks.iter().map(|_| reads.next().flatten()).collect::<Option<Vec<_>>>().ok_or_else(|| {
                DataError::Parquet {
                    path: path.to_owned(),
                    row_group: Some(g),
                    reason: "a column could not be read".into(),
                }
            })?;
        let error_at = |row: usize, problem: FieldProblem, task: &Task| DataError::Value {
            path: path.to_owned(),
            row_group: g,
            row: first_row + row as u64 + 1,
            problem: named(problem, task, plan),
        };
        let (parts, problems): (Vec<Part>, Vec<_>) = parts.into_iter().unzip();
        // The bad rows, the first (in column order) reason of each.
        let mut bad: BTreeMap<usize, (FieldProblem, usize)> = BTreeMap::new();
        for (t, problems) in problems.into_iter().enumerate() {
            for (row, problem) in problems {
                bad.entry(row).or_insert((problem, t));
            }
        }
        let dropped: BTreeSet<usize> = bad.keys().copied().collect();
        if let Some((row, (problem, t))) = bad.into_iter().next() {
            let e = error_at(row, problem, &tasks[t].1);
            if !skip {
                return Err(e);
            }
            table.skipped += dropped.len();
            if table.first_skipped.is_none() {
                table.first_skipped = Some(e.to_string());
                first_error = Some(e);
            }
        }
        let keep = |i: usize| !dropped.contains(&i);
        let base = table.rows;
        for ((_, task), part) in tasks.iter().zip(parts) {
            match (task, part) {
                (Task::Numeric { feature, shape, .. }, Part::Numbers { values: v, missing }) => {
                    let column = numeric.entry(feature).or_insert_with(|| (Vec::new(), *shape, Vec::new()));
                    let mut kept = 0;
                    let mut gaps = missing.iter().peekable();
                    for (i, row) in v.chunks(*shape).enumerate().take(group_rows) {
                        if !keep(i) {
                            gaps.next_if(|&&m| m == i);
                            continue;
                        }
                        column.0.extend_from_slice(row);
                        if gaps.next_if(|&&m| m == i).is_some() {
                            column.2.push(base + kept);
                        }
                        kept += 1;
                    }
                }
                (Task::Categorical { feature, .. }, Part::Ids(ids)) => {
                    let column = single.entry(feature).or_default();
                    column.extend(ids.into_iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, id)| id));
                }
                (Task::Categorical { feature, .. }, Part::Lists(l)) => {
                    let column = lists.entry(feature).or_default();
                    column.extend(l.into_iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, ids)| ids));
                }
                (_, Part::Classes(c)) => {
                    classes.extend(c.into_iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, x)| x))
                }
                (_, Part::Values(v)) => {
                    values.extend(v.into_iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, x)| x))
                }
                (_, Part::Weights(w)) => {
                    weights.extend(w.into_iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, x)| x))
                }
                _ => {}
            }
        }
        table.rows += group_rows - dropped.len();
        first_row += group_rows as u64;
    }
    if table.rows == 0 {
        return Err(match first_error {
            Some(first) => {
                DataError::AllRowsBad { path: path.to_owned(), skipped: table.skipped, first: Box::new(first) }
            }
            None => DataError::NoRows { path: path.to_owned() },
        });
    }
    let rows = table.rows;
    table.numeric = block(plan, rows, numeric);
    for (name, ids) in single {
        table.ids.insert(name.to_string(), IdColumn { ids: ids.into(), width: 1 });
    }
    let multivalent = !lists.is_empty();
    for (name, l) in lists {
        table.ids.insert(name.to_string(), pad(&l));
    }
    if multivalent {
        derive_lists(plan, &mut table);
    } else {
        derive(plan, &mut table);
    }
    table.labels = match (purpose, plan.model.head.kind) {
        (Purpose::Unlabelled, _) => None,
        (_, HeadKind::Regression) => Some(Labels::Values(values)),
        _ => Some(Labels::Classes(classes)),
    };
    table.weights = (purpose == Purpose::Labelled && plan.data.weight.is_some()).then_some(weights);
    Ok(table)
}

/// A problem with the column it concerns filled in.
fn named(problem: FieldProblem, task: &Task, plan: &Plan) -> FieldProblem {
    let column = || match task {
        Task::Numeric { feature, .. } | Task::Categorical { feature, .. } => {
            match plan.feature(feature).map(|f| &f.feature.kind) {
                Some(FeatureKind::Numeric { column, .. } | FeatureKind::Categorical { column, .. }) => column.clone(),
                _ => feature.to_string(),
            }
        }
        Task::Label => plan.data.label.clone(),
        Task::Weight => plan.data.weight.clone().unwrap_or_default(),
    };
    match problem {
        FieldProblem::MissingWithoutDefault { feature, .. } => {
            FieldProblem::MissingWithoutDefault { column: column(), feature }
        }
        FieldProblem::NotANumber { found, .. } => FieldProblem::NotANumber { column: column(), found },
        FieldProblem::ValueCount { found, expected, .. } => {
            FieldProblem::ValueCount { column: column(), found, expected }
        }
        other => other,
    }
}

fn clone_problem(p: &FieldProblem) -> FieldProblem {
    use FieldProblem as P;
    match p {
        P::MissingWithoutDefault { column, feature } => {
            P::MissingWithoutDefault { column: column.clone(), feature: feature.clone() }
        }
        P::NotANumber { column, found } => P::NotANumber { column: column.clone(), found: found.clone() },
        P::ValueCount { column, found, expected } => {
            P::ValueCount { column: column.clone(), found: *found, expected: *expected }
        }
        P::NotInVocabulary { feature, value, suggestion } => {
            P::NotInVocabulary { feature: feature.clone(), value: value.clone(), suggestion: suggestion.clone() }
        }
        P::NotAnId { feature, value, max } => P::NotAnId { feature: feature.clone(), value: value.clone(), max: *max },
        P::LabelMissing(l) => P::LabelMissing(l.clone()),
        P::LabelNotANumber { label, found } => P::LabelNotANumber { label: label.clone(), found: found.clone() },
        P::LabelNotInVocabulary { found, suggestion } => {
            P::LabelNotInVocabulary { found: found.clone(), suggestion: suggestion.clone() }
        }
        P::LabelOutOfRange { class, n_classes } => P::LabelOutOfRange { class: *class, n_classes: *n_classes },
        P::LabelNotAClassId(s) => P::LabelNotAClassId(s.clone()),
        P::WeightMissing { column } => P::WeightMissing { column: column.clone() },
        P::WeightNotANumber { column, found } => P::WeightNotANumber { column: column.clone(), found: found.clone() },
        P::WeightNegative { column, found } => P::WeightNegative { column: column.clone(), found: found.clone() },
        P::NotUtf8(s) => P::NotUtf8(s.clone()),
        P::Empty { column, feature } => P::Empty { column: column.clone(), feature: feature.clone() },
        // The CSV-only problems never come from a Parquet file.
        other => P::NotUtf8(other.to_string()),
    }
}

/// Per-row id lists padded with `-1` to the longest.
fn pad(lists: &[Vec<i64>]) -> IdColumn {
    let width = lists.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = vec![-1; lists.len() * width];
    for (row, list) in ids.chunks_mut(width).zip(lists) {
        row[..list.len()].copy_from_slice(list);
    }
    IdColumn { ids: ids.into(), width }
}

/// Bucketized and crossed columns where a source holds several ids a row, as the careful
/// reader makes them.
fn derive_lists(plan: &Plan, table: &mut Table) {
    let single = Plan {
        features: plan
            .features
            .iter()
            .filter(|f| !matches!(f.feature.kind, FeatureKind::Crossed { .. }))
            .cloned()
            .collect(),
        ..plan.clone()
    };
    derive(&single, table);
    for f in &plan.features {
        let FeatureKind::Crossed { sources, hash_buckets } = &f.feature.kind else { continue };
        let columns: Vec<&IdColumn> = sources.iter().filter_map(|s| table.ids.get(s)).collect();
        if columns.len() != sources.len() {
            continue;
        }
        let rows: Vec<Vec<i64>> = (0..table.rows)
            .map(|r| {
                let lists: Vec<Vec<i64>> = columns
                    .iter()
                    .map(|c| c.ids[r * c.width..(r + 1) * c.width].iter().copied().filter(|&id| id >= 0).collect())
                    .collect();
                let slices: Vec<&[i64]> = lists.iter().map(Vec::as_slice).collect();
                crossed(&slices, *hash_buckets)
            })
            .collect();
        table.ids.insert(f.feature.name.clone(), pad(&rows));
    }
}
