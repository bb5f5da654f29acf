//! The `data` block: paths that exist, a label that is in the header, the reading options.

use camino::{Utf8Path, Utf8PathBuf};

use super::fields::{Ctx, Fields};
use crate::data::parquet::{self, Need};
use crate::data::source::{self, Format};
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::pipeline::{is_glob, BadRows, DataSpec, Files, GLOB};
use crate::span::{Span, Spanned};
use crate::spec::{Decl, ValueKind};

const KEYS: [&str; 11] = [
    "train",
    "eval",
    "predict",
    "label",
    "label_vocabulary",
    "weight",
    "missing",
    "delimiter",
    "header",
    "columns",
    "bad_rows",
];

/// The checked block, plus what the checker learnt from the files' headers.
pub struct CheckedData {
    pub spec: DataSpec,
    /// The first file of each input that was read, to check features against (the other
    /// parts of an input have the same columns, or that was reported).
    pub files: Vec<DataFile>,
}

/// A data file's columns, as its header or Parquet schema gives them.
pub struct DataFile {
    pub path: Utf8PathBuf,
    /// The columns' names.
    pub columns: Vec<String>,
    /// A Parquet file's columns and their types.
    pub typed: Option<Vec<parquet::Column>>,
}

impl DataFile {
    /// Reports a Parquet column whose type `reader` cannot take.
    pub fn check_type(&self, ctx: &mut Ctx, column: &str, need: Need, reader: String, span: Span) -> bool {
        let Some(c) = self.typed.as_ref().and_then(|t| t.iter().find(|c| c.name == column)) else { return true };
        if need.takes(c.kind) {
            return true;
        }
        let kind = DiagnosticKind::ColumnTypeMismatch {
            column: column.to_string(),
            file: self.path.to_string(),
            found: c.found.clone(),
            reader,
            expected: need.expected(),
        };
        ctx.error(kind, span);
        false
    }
}

pub fn check(ctx: &mut Ctx, decl: &Decl, base_dir: &Utf8Path) -> Option<CheckedData> {
    let body = super::plain_body(ctx, decl)?;
    let f = Fields::new(ctx, "data", "data", decl.kind.span, &body.items, &KEYS, &|_| None);
    f.require(ctx, "train", "data");
    f.require(ctx, "label", "data");

    // A path or glob, or a list of them.
    let path = |ctx: &mut Ctx, key: &str| -> Option<Vec<Spanned<Utf8PathBuf>>> {
        let written = match f.value(ctx, key).map(|v| &v.kind) {
            Some(ValueKind::List(_)) => f.list(ctx, key, "a path", |v| match v {
                ValueKind::Str(s) => Some(s.clone()),
                _ => None,
            })?,
            _ => vec![f.string(ctx, key)?],
        };
        if written.is_empty() {
            super::fields::out_of_range(ctx, key, "must name at least one file".into(), f.span(key)?);
            return None;
        }
        Some(written.into_iter().map(|s| Spanned::new(super::resolve(base_dir, &s.node), s.span)).collect())
    };
    let train = path(ctx, "train");
    let eval = path(ctx, "eval");
    let predict = path(ctx, "predict");
    let label = f.name(ctx, "label");
    let weight = f.name(ctx, "weight");
    if let (Some(w), Some(l)) = (&weight, &label) {
        if w.node == l.node {
            super::fields::out_of_range(ctx, "weight", format!("must not be the label `{}`", l.node), w.span);
        }
    }
    let label_vocabulary = f
        .list(ctx, "label_vocabulary", "a string", |v| match v {
            ValueKind::Str(s) => Some(s.clone()),
            ValueKind::Int(i) => Some(i.to_string()),
            _ => None,
        })
        .and_then(|values| {
            if values.is_empty() {
                super::fields::out_of_range(
                    ctx,
                    "label_vocabulary",
                    "must not be empty".into(),
                    f.span("label_vocabulary")?,
                );
                return None;
            }
            no_repeats(ctx, "label_vocabulary", &values).then(|| values.into_iter().map(|v| v.node).collect())
        });
    let missing = match f.value(ctx, "missing").map(|v| &v.kind) {
        Some(ValueKind::Str(s)) => Some(vec![s.clone()]),
        Some(_) => f
            .list(ctx, "missing", "a string", |v| match v {
                ValueKind::Str(s) => Some(s.clone()),
                _ => None,
            })
            .map(|l| l.into_iter().map(|s| s.node).collect()),
        None => Some(vec![]),
    };
    let delimiter = match f.string(ctx, "delimiter") {
        None => Some(','),
        Some(s) => {
            let mut chars = s.node.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii() && c != '"' && c != '\n' => Some(c),
                _ => {
                    super::fields::out_of_range(
                        ctx,
                        "delimiter",
                        format!("must be one ASCII character other than a quote or newline, found {:?}", s.node),
                        s.span,
                    );
                    None
                }
            }
        }
    };
    let header = f.bool(ctx, "header").unwrap_or(true);
    let columns = f.names(ctx, "columns").map(|c| c.into_iter().map(|s| s.node).collect::<Vec<_>>());
    if !header && columns.is_none() && !f.has("columns") {
        ctx.report(
            Diagnostic::new(
                DiagnosticKind::MissingKey { key: "columns", block: "data".into() },
                f.span("header").unwrap_or(decl.kind.span),
            )
            .with_help("without a header row, name the columns: `columns = [a, b, label]`"),
        );
    }
    let bad_rows = f.choice(ctx, "bad_rows", &[("error", BadRows::Error), ("skip", BadRows::Skip)]);
    let bad_rows = if f.has("bad_rows") { bad_rows } else { Some(BadRows::Error) };

    // Headers are read now so a wrong column name is reported with the other mistakes.
    let mut files = Vec::new();
    for (which, entries) in [("train", &train), ("eval", &eval), ("predict", &predict)] {
        let Some(entries) = entries else { continue };
        let Some(delimiter) = delimiter else { continue };
        let reading = Reading { base_dir, delimiter, header, columns: columns.as_deref() };
        let Some(file) = read_input(ctx, entries, &reading) else { continue };
        if let Some(label) = &label {
            if which != "predict" && !file.columns.contains(&label.node) {
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::LabelNotInData { label: label.node.clone(), file: file.path.to_string() },
                        label.span,
                    )
                    .suggesting(&label.node, file.columns.iter().map(String::as_str)),
                );
            } else if which != "predict" {
                // Whether the label is a class or a value is the model's to say: either kind of
                // column can be one or the other.
                file.check_type(ctx, &label.node, Need::Values, "the label".into(), label.span);
            }
        }
        if let (Some(weight), false) = (&weight, which == "predict") {
            if !file.columns.contains(&weight.node) {
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::UnknownDataColumn { name: weight.node.clone(), file: file.path.to_string() },
                        weight.span,
                    )
                    .suggesting(&weight.node, file.columns.iter().map(String::as_str)),
                );
            } else {
                file.check_type(ctx, &weight.node, Need::Number, "the weight".into(), weight.span);
            }
        }
        files.push(file);
    }
    let files_of = |entries: Vec<Spanned<Utf8PathBuf>>| Files(entries.into_iter().map(|e| e.node).collect());

    let spec = DataSpec {
        train: files_of(train?),
        eval: eval.map(files_of),
        predict: predict.map(files_of),
        label: label?.node,
        weight: if f.has("weight") { Some(weight?.node) } else { None },
        label_vocabulary: if f.has("label_vocabulary") { Some(label_vocabulary?) } else { None },
        missing: missing?,
        delimiter: delimiter?,
        header,
        columns,
        bad_rows: bad_rows?,
    };
    Some(CheckedData { spec, files })
}

/// Reports values listed twice; true when there are none.
pub fn no_repeats(ctx: &mut Ctx, key: &str, values: &[crate::span::Spanned<String>]) -> bool {
    let mut ok = true;
    for (i, v) in values.iter().enumerate() {
        if values[..i].iter().any(|earlier| earlier.node == v.node) {
            ctx.error(DiagnosticKind::DuplicateValue { key: key.to_string(), value: format!("`{}`", v.node) }, v.span);
            ok = false;
        }
    }
    ok
}

/// How the data block says files are read.
struct Reading<'a> {
    base_dir: &'a Utf8Path,
    delimiter: char,
    header: bool,
    columns: Option<&'a [String]>,
}

/// Every file an input's paths and globs name, its columns read; the first file's, when all of
/// them could be read and agree.
fn read_input(ctx: &mut Ctx, entries: &[Spanned<Utf8PathBuf>], reading: &Reading) -> Option<DataFile> {
    let mut first: Option<DataFile> = None;
    let mut ok = true;
    for entry in entries {
        let paths: Vec<Utf8PathBuf> = if is_glob(entry.node.as_str()) {
            let mut found: Vec<Utf8PathBuf> = glob::glob_with(entry.node.as_str(), GLOB)
                .map(|paths| {
                    paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .filter_map(|p| Utf8PathBuf::from_path_buf(p).ok())
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            if found.is_empty() {
                ctx.report(
                    Diagnostic::new(DiagnosticKind::NoMatchingDataFile { pattern: entry.node.to_string() }, entry.span)
                        .with_help(format!(
                            "paths are relative to the folder of the .est file, `{}`",
                            reading.base_dir
                        )),
                );
                ok = false;
            }
            found
        } else {
            vec![entry.node.clone()]
        };
        for path in paths {
            let Some(file) = read_columns(ctx, &path, entry.span, reading) else {
                ok = false;
                continue;
            };
            match &first {
                None => first = Some(file),
                Some(f) if f.columns != file.columns => {
                    let difference = crate::data::difference(&f.columns, &file.columns);
                    let kind = DiagnosticKind::DataPartsDisagree {
                        first: f.path.to_string(),
                        path: path.to_string(),
                        difference,
                    };
                    ctx.error(kind, entry.span);
                    ok = false;
                }
                Some(_) => {}
            }
        }
    }
    first.filter(|_| ok)
}

/// The columns of a data file: a Parquet file's schema, `columns` when given, else its header row.
fn read_columns(ctx: &mut Ctx, path: &Utf8Path, span: Span, reading: &Reading) -> Option<DataFile> {
    if !path.exists() {
        ctx.report(
            Diagnostic::new(DiagnosticKind::MissingDataFile { path: path.to_string() }, span)
                .with_help(format!("paths are relative to the folder of the .est file, `{}`", reading.base_dir)),
        );
        return None;
    }
    let unreadable = |ctx: &mut Ctx, reason: String| {
        ctx.error(DiagnosticKind::UnreadableDataFile { path: path.to_string(), reason }, span);
    };
    if Format::of(path) == Format::Parquet {
        return match parquet::schema(path) {
            Ok(typed) => {
                let columns = typed.iter().map(|c| c.name.clone()).collect();
                Some(DataFile { path: path.to_owned(), columns, typed: Some(typed) })
            }
            Err(reason) => {
                unreadable(ctx, reason);
                None
            }
        };
    }
    if let Some(columns) = reading.columns {
        return Some(DataFile { path: path.to_owned(), columns: columns.to_vec(), typed: None });
    }
    if !reading.header {
        return None;
    }
    match source::column_names(path, reading.delimiter, true, None) {
        Ok(columns) => Some(DataFile { path: path.to_owned(), columns, typed: None }),
        Err(reason) => {
            unreadable(ctx, reason);
            None
        }
    }
}
