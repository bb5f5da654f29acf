//! The fast way through a clean CSV file: no quotes, one value per field, every row good. The
//! cores take 1 MiB blocks of the file in turn and read their rows straight into the table's
//! columns (`blocks`), so no value is copied after it is parsed. Within a line, the field
//! separators are found 64 bytes at a time, and plain decimals are read eight at a time with
//! AVX-512, or one at a time, 16 bytes at once, with SSE4.1 (`rows`, `avx512`, `sse41`).
//! Anything unusual (a quote, an empty line, a field that does not parse) returns `None`, and
//! the careful reader, which names file, line and column, reads the file instead. Both produce
//! the same table, bit for bit, whichever kernels the processor has.

mod alloc;
mod avx512;
mod blocks;
mod kernel;
mod number;
mod rows;
mod sse2;
mod sse41;

use std::collections::HashMap;
use std::fs::File;

use camino::Utf8Path;

pub use number::parse_f32;

use super::stats::{dense_partial, finish_stats, merge_stats, STATS_ROWS};
use super::{derive, IdColumn, Labels, NumericBlock, NumericColumn, Purpose, Table};
use crate::pipeline::{CategoricalIds, DataSpec, FeatureKind};
use crate::plan::{HeadKind, Plan};
use blocks::Body;
use rows::{trim_cr, Field, Row, Shape};

/// The most the fast reader may ask of the processor: a test asks for less to cover the paths
/// another machine takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// No vector kernels beyond the baseline.
    Portable,
    /// SSE4.1 and POPCNT.
    Sse41,
    /// AVX-512 (F, BW, VL, DQ, VBMI, BITALG) besides.
    Avx512,
}

/// Reads `path` the fast way with every kernel the processor has; `None` sends it to the
/// careful reader.
pub fn load(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Option<Table> {
    load_with(plan, path, purpose, Isa::Avx512)
}

/// As `load`, with no kernel beyond `isa`.
pub fn load_with(plan: &Plan, path: &Utf8Path, purpose: Purpose, isa: Isa) -> Option<Table> {
    let file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len() as usize;
    read(plan, Body::File(&file), size, purpose, isa)
}

/// Reads a file's text that is already in memory (a decompressed file) the fast way.
pub fn load_bytes(plan: &Plan, text: &[u8], purpose: Purpose) -> Option<Table> {
    read(plan, Body::Bytes(text), text.len(), purpose, Isa::Avx512)
}

fn read(plan: &Plan, file: Body, size: usize, purpose: Purpose, isa: Isa) -> Option<Table> {
    if size == 0 {
        return None;
    }
    let (names, body_start) = header(file, size, &plan.data)?;
    let layout = Layout::of(plan, &names, purpose)?;
    let missing: Vec<&[u8]> = plan.data.missing.iter().map(|m| m.as_bytes()).collect();
    let shape = Shape { width: layout.columns.len(), categorical: layout.categorical.len() };
    let row = Row::new(names.len(), plan.data.delimiter as u8, &layout.fields, &missing, shape, isa);
    let labelled = purpose == Purpose::Labelled;
    let regression = labelled && plan.model.head.kind == HeadKind::Regression;
    let filled = blocks::read(file, body_start, size, row, labelled && !regression, regression)?;
    let rows = filled.rows;
    let width = shape.width;
    let mut numeric = NumericBlock { values: filled.block, width, columns: layout.columns };
    if width > 0 && filled.missing.iter().all(Vec::is_empty) {
        // The groups of rows the cores did not sum as they went: the last, partly filled one.
        let partials: Vec<_> = filled
            .partials
            .into_iter()
            .enumerate()
            .map(|(g, partial)| {
                partial.unwrap_or_else(|| {
                    let rows = g * STATS_ROWS..((g + 1) * STATS_ROWS).min(rows);
                    dense_partial(&numeric.values[rows.start * width..rows.end * width], width)
                })
            })
            .collect();
        merge_stats(&mut numeric, &partials);
    } else {
        finish_stats(&mut numeric, &filled.missing);
    }
    let mut table = Table { rows, numeric, ..Table::default() };
    for (name, column) in layout.categorical.iter().zip(columns_of(&filled.ids, rows, layout.categorical.len())) {
        table.ids.insert(name.to_string(), IdColumn { ids: column.into(), width: 1 });
    }
    derive(plan, &mut table);
    table.labels = match (labelled, regression) {
        (false, _) => None,
        (true, true) => Some(Labels::Values(filled.values)),
        (true, false) => Some(Labels::Classes(filled.classes)),
    };
    Some(table)
}

/// The column names, from the header (or the data block's `columns`), and where the body
/// starts; `None` for a header the careful reader should look at.
fn header(file: Body, size: usize, data: &DataSpec) -> Option<(Vec<String>, usize)> {
    let mut head = vec![0u8; size.min(1 << 16)];
    file.read_exact_at(&mut head, 0)?;
    let bom = if head.starts_with(b"\xef\xbb\xbf") { 3 } else { 0 };
    let delimiter = data.delimiter as u8;
    if !data.delimiter.is_ascii() || matches!(delimiter, b'\n' | b'\r' | b'"') {
        return None;
    }
    if !data.header {
        return Some((data.columns.clone()?, bom));
    }
    let end = memchr::memchr(b'\n', &head[bom..])? + bom;
    let line = trim_cr(&head[bom..end]);
    if line.contains(&b'"') {
        return None;
    }
    let header: Vec<String> =
        line.split(|&b| b == delimiter).map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
    // A repeated name is an error the careful reader reports.
    if crate::pipeline::repeated(&header).is_some() {
        return None;
    }
    Some((data.columns.clone().unwrap_or(header), end + 1))
}

/// Which fields a row's columns feed, and where the values go.
struct Layout<'p> {
    /// Per needed field: its column in the file and how it is read, sorted by column.
    fields: Vec<(usize, Field<'p>)>,
    /// The numeric block's columns, in the plan's numeric order.
    columns: Vec<NumericColumn>,
    /// The categorical features, in the order of their ids in a row.
    categorical: Vec<&'p str>,
}

impl<'p> Layout<'p> {
    /// The layout for a file with columns `names`; `None` for a plan the fast way does not
    /// take (a column of several numbers, a multivalent column, weighted rows) or a column the
    /// file lacks.
    fn of(plan: &'p Plan, names: &[String], purpose: Purpose) -> Option<Layout<'p>> {
        // The fast way reads no weights; the careful one does, and names a bad one's line and column.
        if purpose == Purpose::Labelled && plan.data.weight.is_some() {
            return None;
        }
        let at = |name: &str| names.iter().position(|n| n == name);
        let mut columns = Vec::new();
        let mut fields: Vec<(usize, Field)> = Vec::new();
        for (offset, name) in plan.numeric_order().into_iter().enumerate() {
            let f = plan.feature(&name)?;
            let FeatureKind::Numeric { column, default, shape, .. } = &f.feature.kind else { return None };
            if *shape != 1 {
                return None;
            }
            fields.push((at(column)?, Field::Numeric { at: offset, default: default.map(|d| d as f32) }));
            columns.push(NumericColumn { name, offset, shape: 1, ..NumericColumn::default() });
        }
        let mut categorical: Vec<&str> = Vec::new();
        for f in &plan.features {
            if let FeatureKind::Categorical { column, ids, separator } = &f.feature.kind {
                if separator.is_some() {
                    return None;
                }
                let vocabulary = match ids {
                    CategoricalIds::Vocabulary { vocabulary, .. } => {
                        vocabulary.iter().enumerate().map(|(i, v)| (v.as_bytes(), i as i64)).collect()
                    }
                    _ => HashMap::new(),
                };
                fields.push((at(column)?, Field::Categorical { at: categorical.len(), ids, vocabulary }));
                categorical.push(&f.feature.name);
            }
        }
        if purpose == Purpose::Labelled {
            let field = match plan.model.head.kind {
                HeadKind::Regression => Field::Value,
                _ => Field::Class {
                    vocabulary: plan
                        .data
                        .label_vocabulary
                        .as_ref()
                        .map(|v| v.iter().enumerate().map(|(i, s)| (s.as_bytes(), i as i64)).collect()),
                    n_classes: plan.model.head.n_classes.unwrap_or(0) as i64,
                },
            };
            fields.push((at(&plan.data.label)?, field));
        }
        fields.sort_by_key(|(i, _)| *i);
        Some(Layout { fields, columns, categorical })
    }
}

/// The `k` columns of row-major ids `[rows, k]`, a block of rows at a time so that the block
/// stays in cache while each column takes its part (a column at a time over all rows read the
/// whole block once per column), the columns shared out among the cores.
fn columns_of(ids: &[i64], rows: usize, k: usize) -> Vec<Vec<i64>> {
    const BLOCK: usize = 2048;
    let mut columns: Vec<Vec<i64>> = (0..k).map(|_| vec![0; rows]).collect();
    if k == 0 || rows == 0 {
        return columns;
    }
    let threads = super::cores().clamp(1, k);
    let per = k.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, part) in columns.chunks_mut(per).enumerate() {
            scope.spawn(move || {
                for start in (0..rows).step_by(BLOCK) {
                    let end = (start + BLOCK).min(rows);
                    for (j, column) in part.iter_mut().enumerate() {
                        let c = t * per + j;
                        for (r, id) in (start..end).zip(&mut column[start..end]) {
                            *id = ids[r * k + c];
                        }
                    }
                }
            });
        }
    });
    columns
}
