//! Syntax tree to checked spec: every block, key, type, range and reference is verified, every
//! default filled in, paths resolved against the `.est` file's folder. All mistakes are collected
//! and returned together; a spec is returned only when there are none.

mod data;
mod features;
mod fields;
mod model;
mod optimizer;
mod run;

use camino::{Utf8Path, Utf8PathBuf};

use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::pipeline::*;
use crate::spec::{Ast, Body, Decl, Item};
pub use fields::SpanMap;
use fields::{Ctx, Fields};

/// A pipeline that passed every check, with every default explicit.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedSpec {
    /// The pipeline's name.
    pub name: String,
    /// The `data` block.
    pub data: DataSpec,
    /// The declared columns, in file order.
    pub features: Vec<Feature>,
    /// The `model` block.
    pub model: ModelSpec,
    /// One optimizer, or one per part of a wide & deep model.
    pub optimizers: Vec<Optimizer>,
    /// The `train` block.
    pub train: TrainSpec,
    /// The `eval` block.
    pub eval: EvalSpec,
    /// The `early_stop` block, if any.
    pub early_stop: Option<EarlyStopSpec>,
    /// The `checkpoint` block.
    pub checkpoint: CheckpointSpec,
    /// The `summaries` block.
    pub summaries: SummariesSpec,
    /// Where each key was written, for messages that point back into the file.
    pub spans: SpanMap,
}

/// The blocks a pipeline may hold.
pub const BLOCKS: [&str; 11] = [
    "data",
    "features",
    "model",
    "optimizer",
    "dnn_optimizer",
    "linear_optimizer",
    "train",
    "eval",
    "early_stop",
    "checkpoint",
    "summaries",
];

/// Checks a parsed pipeline whose relative paths are relative to `base_dir`.
pub fn check(ast: &Ast, base_dir: &Utf8Path) -> Result<CheckedSpec, Vec<Diagnostic>> {
    let mut ctx = Ctx::default();
    let (blocks, typos) = collect_blocks(&mut ctx, ast);

    let block = |name: &str| blocks.iter().find(|d| d.kind.node == name).copied();

    let data = match block("data") {
        Some(decl) => data::check(&mut ctx, decl, base_dir),
        None => missing_block(&mut ctx, "data", ast, &typos),
    };
    // A baseline is a bias alone: it reads no features, so it needs no `features` block.
    let baseline = block("model").and_then(|m| m.name.as_ref()).is_some_and(|n| n.node.starts_with("baseline_"));
    let features = match block("features") {
        Some(decl) => features::check(&mut ctx, decl, data.as_ref()),
        None if baseline => Some(Vec::new()),
        None => missing_block(&mut ctx, "features", ast, &typos),
    };
    let model = match block("model") {
        Some(decl) => model::check(&mut ctx, decl, features.as_deref(), data.as_ref().map(|d| &d.spec)),
        None => missing_block(&mut ctx, "model", ast, &typos),
    };
    let optimizers = model.as_ref().and_then(|m| {
        let linear_inputs = m.linear.as_ref().map_or(0, |l| l.inputs.len());
        optimizer::check(
            &mut ctx,
            [block("optimizer"), block("dnn_optimizer"), block("linear_optimizer")],
            m.kind,
            linear_inputs,
        )
    });
    let train = run::check_train(&mut ctx, block("train"));
    let eval = run::check_eval(&mut ctx, block("eval"), train.as_ref().map_or(1, |t| t.batch_size));
    let metrics = model.as_ref().map(ModelSpec::metrics);
    let evaluates = eval.as_ref().map(|e| (e.every.is_some(), data.as_ref().is_some_and(|d| d.spec.eval.is_some())));
    let early_stop = run::check_early_stop(&mut ctx, block("early_stop"), evaluates, metrics);
    let checkpoint = run::check_checkpoint(
        &mut ctx,
        block("checkpoint"),
        base_dir,
        &ast.name.node,
        metrics,
        early_stop.as_ref().and_then(|e| e.as_ref()),
    );
    let summaries = run::check_summaries(&mut ctx, block("summaries"));

    if !ctx.diagnostics.is_empty() {
        ctx.diagnostics.sort_by_key(|d| d.span.start);
        return Err(ctx.diagnostics);
    }
    match (data, features, model, optimizers, train, eval, early_stop, checkpoint, summaries) {
        (
            Some(data),
            Some(features),
            Some(model),
            Some(optimizers),
            Some(train),
            Some(eval),
            Some(early_stop),
            Some(checkpoint),
            Some(summaries),
        ) => Ok(CheckedSpec {
            name: ast.name.node.clone(),
            data: data.spec,
            features,
            model,
            optimizers,
            train,
            eval,
            early_stop,
            checkpoint,
            summaries,
            spans: ctx.spans,
        }),
        // Every path that yields `None` reports a diagnostic first.
        _ => Err(vec![Diagnostic::new(
            DiagnosticKind::Syntax { expected: vec![], found: "a pipeline est could not check".into() },
            ast.name.span,
        )
        .with_help("this is a bug in est; please report it with the file")]),
    }
}

fn missing_block<T>(ctx: &mut Ctx, name: &'static str, ast: &Ast, typos: &[&str]) -> Option<T> {
    // A misspelt block was reported already; saying it is missing too would be noise.
    if !typos.contains(&name) {
        ctx.error(DiagnosticKind::MissingBlock { name }, ast.name.span);
    }
    None
}

/// The top-level blocks, each known and present once, and the blocks misspellings looked like.
fn collect_blocks<'a>(ctx: &mut Ctx, ast: &'a Ast) -> (Vec<&'a Decl>, Vec<&'static str>) {
    let mut blocks: Vec<&'a Decl> = Vec::new();
    let mut typos = Vec::new();
    for item in &ast.items {
        let decl = match item {
            Item::Decl(decl) => decl,
            Item::Entry(entry) => {
                let diagnostic = Diagnostic::new(
                    DiagnosticKind::MisplacedItem {
                        expected: "a block",
                        found: "`key = value`",
                        place: format!("pipeline `{}`", ast.name.node),
                    },
                    entry.key.span,
                );
                ctx.report(diagnostic.with_help("keys belong inside a block such as `train { ... }`"));
                continue;
            }
        };
        let kind = decl.kind.node.as_str();
        if !BLOCKS.contains(&kind) {
            typos.extend(crate::suggestion::suggest(kind, BLOCKS));
            ctx.report(
                Diagnostic::new(DiagnosticKind::UnknownBlock { name: kind.to_string() }, decl.kind.span)
                    .suggesting(kind, BLOCKS),
            );
        } else if let Some(first) = blocks.iter().find(|b| b.kind.node == kind) {
            ctx.error(
                DiagnosticKind::DuplicateBlock { name: kind.to_string(), first: first.kind.span },
                decl.kind.span,
            );
        } else {
            ctx.spans.insert(kind.to_string(), decl.kind.span);
            blocks.push(decl);
        }
    }
    (blocks, typos)
}

/// The body of a block that takes no name and no source: `train { ... }`.
fn plain_body<'a>(ctx: &mut Ctx, decl: &'a Decl) -> Option<&'a Body> {
    let block = &decl.kind.node;
    if let Some(name) = &decl.name {
        ctx.report(
            Diagnostic::new(
                DiagnosticKind::MalformedBlock { block: block.clone(), problem: "takes no name".into() },
                name.span,
            )
            .with_help(format!("write `{block} {{ ... }}`")),
        );
    }
    if let Some(source) = &decl.source {
        ctx.error(
            DiagnosticKind::MalformedBlock { block: block.clone(), problem: "takes no `= ...`".into() },
            source.span(),
        );
    }
    match &decl.body {
        Some(body) => Some(body),
        None => {
            ctx.report(
                Diagnostic::new(
                    DiagnosticKind::MalformedBlock { block: block.clone(), problem: "needs a body".into() },
                    decl.span,
                )
                .with_help(format!("write `{block} {{ ... }}`")),
            );
            None
        }
    }
}

/// Fields of a simple block, or of an absent one (all defaults).
fn block_fields<'a>(ctx: &mut Ctx, decl: Option<&'a Decl>, name: &str, allowed: &[&'static str]) -> Fields<'a> {
    let no_items: &'a [Item] = &[];
    match decl {
        Some(decl) => {
            let items = plain_body(ctx, decl).map_or(no_items, |b| b.items.as_slice());
            Fields::new(ctx, name, name, decl.kind.span, items, allowed, &|_| None)
        }
        None => Fields::new(ctx, name, name, Default::default(), no_items, allowed, &|_| None),
    }
}

/// `base/path`, lexically normalised, for a path written in the file.
pub fn resolve(base_dir: &Utf8Path, path: &str) -> Utf8PathBuf {
    let joined = base_dir.join(path);
    let mut out = Utf8PathBuf::new();
    for component in joined.components() {
        match component {
            camino::Utf8Component::CurDir => {}
            camino::Utf8Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other.as_str()),
        }
    }
    out
}
