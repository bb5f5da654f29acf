//! The `data` block: paths that exist, a label that is in the header, the reading options.

use camino::{Utf8Path, Utf8PathBuf};

use super::fields::{Ctx, Fields};
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::pipeline::{BadRows, DataSpec};
use crate::span::Span;
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
    /// Each file that was read, its path's span and its columns, to check features against.
    pub files: Vec<(Utf8PathBuf, Span, Vec<String>)>,
}

pub fn check(ctx: &mut Ctx, decl: &Decl, base_dir: &Utf8Path) -> Option<CheckedData> {
    let body = super::plain_body(ctx, decl)?;
    let f = Fields::new(ctx, "data", "data", decl.kind.span, &body.items, &KEYS, &|_| None);
    f.require(ctx, "train", "data");
    f.require(ctx, "label", "data");

    let path = |ctx: &mut Ctx, key: &str| -> Option<(Utf8PathBuf, Span)> {
        let s = f.string(ctx, key)?;
        Some((super::resolve(base_dir, &s.node), s.span))
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
    for (which, file) in [("train", &train), ("eval", &eval), ("predict", &predict)] {
        let Some((path, span)) = file else { continue };
        let Some(file_columns) = read_columns(ctx, path, *span, base_dir, delimiter?, header, columns.as_deref())
        else {
            continue;
        };
        if let Some(label) = &label {
            if which != "predict" && !file_columns.contains(&label.node) {
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::LabelNotInData { label: label.node.clone(), file: path.to_string() },
                        label.span,
                    )
                    .suggesting(&label.node, file_columns.iter().map(String::as_str)),
                );
            }
        }
        if let (Some(weight), false) = (&weight, which == "predict") {
            if !file_columns.contains(&weight.node) {
                ctx.report(
                    Diagnostic::new(
                        DiagnosticKind::UnknownDataColumn { name: weight.node.clone(), file: path.to_string() },
                        weight.span,
                    )
                    .suggesting(&weight.node, file_columns.iter().map(String::as_str)),
                );
            }
        }
        files.push((path.clone(), *span, file_columns));
    }

    let spec = DataSpec {
        train: train?.0,
        eval: eval.map(|e| e.0),
        predict: predict.map(|p| p.0),
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

/// The column names of a data file: `columns` when given, else its header row.
fn read_columns(
    ctx: &mut Ctx,
    path: &Utf8Path,
    span: Span,
    base_dir: &Utf8Path,
    delimiter: char,
    header: bool,
    columns: Option<&[String]>,
) -> Option<Vec<String>> {
    if !path.exists() {
        ctx.report(
            Diagnostic::new(DiagnosticKind::MissingDataFile { path: path.to_string() }, span)
                .with_help(format!("paths are relative to the folder of the .est file, `{base_dir}`")),
        );
        return None;
    }
    let unreadable = |ctx: &mut Ctx, reason: String| {
        ctx.error(DiagnosticKind::UnreadableDataFile { path: path.to_string(), reason }, span);
    };
    if let Some(columns) = columns {
        return Some(columns.to_vec());
    }
    if !header {
        return None;
    }
    let mut reader = match csv::ReaderBuilder::new().delimiter(delimiter as u8).has_headers(true).from_path(path) {
        Ok(r) => r,
        Err(e) => {
            unreadable(ctx, e.to_string());
            return None;
        }
    };
    let names: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim_start_matches('\u{feff}').trim().to_string()).collect(),
        Err(e) => {
            unreadable(ctx, e.to_string());
            return None;
        }
    };
    if names.is_empty() || names.iter().all(String::is_empty) {
        unreadable(ctx, "the file is empty: no header row".into());
        return None;
    }
    if let Some(name) = crate::pipeline::repeated(&names) {
        unreadable(ctx, format!("column `{name}` appears twice in the header"));
        return None;
    }
    Some(names)
}
