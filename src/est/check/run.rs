//! The run policy blocks: `train`, `eval`, `checkpoint`, `summaries`. Each may be left out.

use camino::Utf8Path;

use super::fields::{out_of_range, Ctx, Fields};
use crate::diagnostic::{Diagnostic, DiagnosticKind};
use crate::pipeline::*;
use crate::spec::{Decl, ValueKind};

pub fn check_train(ctx: &mut Ctx, decl: Option<&Decl>) -> Option<TrainSpec> {
    let keys = ["batch_size", "steps", "max_steps", "epochs", "shuffle", "seed", "device", "threads"];
    let f = super::block_fields(ctx, decl, "train", &keys);
    let batch_size = int_or(ctx, &f, "batch_size", 32, 1);
    let lengths = ["steps", "max_steps", "epochs"];
    let given: Vec<&str> = lengths.iter().copied().filter(|k| f.has(k)).collect();
    let length = match given.as_slice() {
        [] => Some(TrainLength::Epochs { epochs: 1 }),
        ["steps"] => f.steps(ctx, "steps").map(|s| TrainLength::Steps { steps: s.node }),
        ["max_steps"] => f.steps(ctx, "max_steps").map(|s| TrainLength::MaxSteps { max_steps: s.node }),
        [_] => f.int_min(ctx, "epochs", 1).map(|e| TrainLength::Epochs { epochs: e.node as u64 }),
        [a, b, ..] => {
            f.conflict(ctx, a, b);
            None
        }
    };
    let shuffle = if f.has("shuffle") { f.bool(ctx, "shuffle") } else { Some(true) };
    let seed = int_or(ctx, &f, "seed", 0, 0);
    let device = if f.has("device") { device(ctx, &f) } else { Some(Device::Auto) };
    let threads = if f.has("threads") { threads(ctx, &f) } else { Some(Threads::Auto) };
    Some(TrainSpec {
        batch_size: batch_size? as usize,
        length: length?,
        shuffle: shuffle?,
        seed: seed? as u64,
        device: device?,
        threads: threads?,
    })
}

/// `auto` or a count of at least 1.
fn threads(ctx: &mut Ctx, f: &Fields) -> Option<Threads> {
    let value = f.value(ctx, "threads")?;
    match &value.kind {
        ValueKind::Ident(w) if w == "auto" => Some(Threads::Auto),
        ValueKind::Int(n) if *n >= 1 => Some(Threads::Fixed(*n as usize)),
        ValueKind::Int(n) => {
            out_of_range(ctx, "threads", format!("must be at least 1, found {n}"), value.span);
            None
        }
        other => {
            ctx.error(
                DiagnosticKind::WrongType {
                    key: "threads".into(),
                    expected: "`auto` or a count",
                    found: other.describe(),
                },
                value.span,
            );
            None
        }
    }
}

fn device(ctx: &mut Ctx, f: &Fields) -> Option<Device> {
    let value = f.value(ctx, "device")?;
    let word = match &value.kind {
        ValueKind::Ident(s) | ValueKind::Str(s) => s.clone(),
        _ => {
            ctx.error(
                DiagnosticKind::WrongType { key: "device".into(), expected: "a device", found: value.kind.describe() },
                value.span,
            );
            return None;
        }
    };
    match Device::try_from(word.clone()) {
        Ok(device) => Some(device),
        Err(_) => {
            ctx.report(
                Diagnostic::new(DiagnosticKind::UnknownValue { key: "device".into(), value: word.clone() }, value.span)
                    .suggesting(&word, ["auto", "cpu", "cuda"])
                    .with_help("expected `auto`, `cpu`, `cuda` or `\"cuda:N\"`"),
            );
            None
        }
    }
}

fn int_or(ctx: &mut Ctx, f: &Fields, key: &str, default: i64, min: i64) -> Option<i64> {
    super::features::int_or(ctx, f, key, default, min)
}

pub fn check_eval(ctx: &mut Ctx, decl: Option<&Decl>, train_batch_size: usize) -> Option<EvalSpec> {
    let f = super::block_fields(ctx, decl, "eval", &["every", "steps", "batch_size"]);
    let every = if f.has("every") { Some(f.cadence(ctx, "every")?) } else { None };
    let steps = if f.has("steps") { Some(f.steps(ctx, "steps")?.node) } else { None };
    let batch_size = int_or(ctx, &f, "batch_size", train_batch_size as i64, 1)?;
    Some(EvalSpec { every, steps, batch_size: batch_size as usize })
}

/// The `early_stop` block, if written. `evaluates` says whether the pipeline evaluates during
/// training (`eval.every`) and has an eval file; `metrics` are the keys evaluation prints.
pub fn check_early_stop(
    ctx: &mut Ctx,
    decl: Option<&Decl>,
    evaluates: Option<(bool, bool)>,
    metrics: Option<&[&str]>,
) -> Option<Option<EarlyStopSpec>> {
    let Some(decl) = decl else { return Some(None) };
    let keys = ["metric", "mode", "patience", "min_delta", "min_steps"];
    let f = super::block_fields(ctx, Some(decl), "early_stop", &keys);
    let missing = match evaluates {
        Some((false, false)) => Some("the `eval` block has no `every` and the `data` block no `eval` file"),
        Some((false, true)) => Some("the `eval` block has no `every`"),
        Some((true, false)) => Some("the `data` block has no `eval` file"),
        _ => None,
    };
    let mut ok = true;
    if let Some(missing) = missing {
        ctx.report(
            Diagnostic::new(DiagnosticKind::NeedsEvaluation { block: "early_stop", missing }, decl.kind.span)
                .with_help("add `eval = \"...\"` to `data` and `eval { every = 100 steps }`"),
        );
        ok = false;
    }
    let metric = if f.has("metric") { metric(ctx, &f, "metric", metrics) } else { Some("average_loss".to_string()) };
    let mode = match (&metric, f.has("mode")) {
        (_, true) => mode(ctx, &f),
        (Some(m), false) => Some(Mode::natural(m)),
        (None, false) => None,
    };
    let patience = if f.require(ctx, "patience", "early_stop") { f.int_min(ctx, "patience", 1) } else { None };
    let min_delta = if f.has("min_delta") {
        f.float_where(ctx, "min_delta", |d| d >= 0.0, "must be at least 0").map(|d| d.node)
    } else {
        Some(0.0)
    };
    let min_steps = if f.has("min_steps") { step_count(ctx, &f, "min_steps") } else { Some(0) };
    let spec = EarlyStopSpec {
        objective: Objective { metric: metric?, mode: mode? },
        patience: patience?.node.min(u32::MAX as i64) as u32,
        min_delta: min_delta?,
        min_steps: min_steps?,
    };
    ok.then_some(Some(spec))
}

/// `min` or `max`; `maximum`, `minimize` and the like are pointed at the word they abbreviate.
fn mode(ctx: &mut Ctx, f: &Fields) -> Option<Mode> {
    let value = f.value(ctx, "mode")?;
    let word = match &value.kind {
        ValueKind::Ident(s) | ValueKind::Str(s) => s.clone(),
        other => {
            let found = other.describe();
            ctx.error(DiagnosticKind::WrongType { key: "mode".into(), expected: "`min` or `max`", found }, value.span);
            return None;
        }
    };
    match word.as_str() {
        "min" => return Some(Mode::Min),
        "max" => return Some(Mode::Max),
        _ => {}
    }
    let diagnostic =
        Diagnostic::new(DiagnosticKind::UnknownValue { key: "mode".into(), value: word.clone() }, value.span);
    let lower = word.to_ascii_lowercase();
    ctx.report(match ["min", "max"].into_iter().find(|m| lower.starts_with(m)) {
        Some(m) => diagnostic.with_help(format!("did you mean `{m}`? `mode` is `min` or `max`")),
        None => diagnostic.suggesting(&word, ["min", "max"]),
    });
    None
}

/// A metric name evaluation prints.
fn metric(ctx: &mut Ctx, f: &Fields, key: &str, metrics: Option<&[&str]>) -> Option<String> {
    let name = f.name(ctx, key)?;
    let metrics = metrics?;
    if metrics.contains(&name.node.as_str()) {
        return Some(name.node);
    }
    let shown: Vec<String> = metrics.iter().map(|m| format!("`{m}`")).collect();
    let diagnostic =
        Diagnostic::new(DiagnosticKind::UnknownValue { key: key.to_string(), value: name.node.clone() }, name.span);
    let diagnostic = match crate::suggestion::suggest(&name.node, metrics.iter().copied()) {
        Some(best) => diagnostic.with_help(format!(
            "did you mean {best}? this model's evaluation prints {}",
            crate::diagnostic::list(&shown, "and")
        )),
        None => {
            diagnostic.with_help(format!("this model's evaluation prints {}", crate::diagnostic::list(&shown, "and")))
        }
    };
    ctx.report(diagnostic);
    None
}

/// A global step: `0`, `300` or `300 steps`.
fn step_count(ctx: &mut Ctx, f: &Fields, key: &str) -> Option<u64> {
    let value = f.value(ctx, key)?;
    match value.kind {
        ValueKind::Int(n) if n >= 0 => Some(n as u64),
        ValueKind::Steps(s) => Some(s),
        ValueKind::Int(n) => {
            out_of_range(ctx, key, format!("must be at least 0, found {n}"), value.span);
            None
        }
        _ => {
            ctx.error(
                DiagnosticKind::WrongType { key: key.into(), expected: "a step count", found: value.kind.describe() },
                value.span,
            );
            None
        }
    }
}

pub fn check_checkpoint(
    ctx: &mut Ctx,
    decl: Option<&Decl>,
    base_dir: &Utf8Path,
    pipeline: &str,
    metrics: Option<&[&str]>,
    early_stop: Option<&EarlyStopSpec>,
) -> Option<CheckpointSpec> {
    let keys = ["model_dir", "save_every", "keep_max", "keep_every", "keep_best", "best_by"];
    let f = super::block_fields(ctx, decl, "checkpoint", &keys);
    let model_dir = match f.string(ctx, "model_dir") {
        Some(dir) if dir.node.trim().is_empty() => {
            out_of_range(ctx, "model_dir", "must not be empty".into(), dir.span);
            None
        }
        Some(dir) => Some(super::resolve(base_dir, &dir.node)),
        None if f.has("model_dir") => None,
        None => Some(super::resolve(base_dir, &format!("models/{pipeline}"))),
    };
    let save_every =
        if f.has("save_every") { f.cadence(ctx, "save_every") } else { Some(Cadence::Seconds { seconds: 600.0 }) };
    let keep_max = int_or(ctx, &f, "keep_max", 5, 1);
    let keep_every = if f.has("keep_every") { Some(f.duration(ctx, "keep_every")?) } else { None };
    let keep_best = int_or(ctx, &f, "keep_best", 0, 0);
    // The early stop's metric by default, so the checkpoints kept are the ones it judged best.
    let best_by = match (f.has("best_by"), early_stop) {
        (true, _) => metric(ctx, &f, "best_by", metrics).map(|m| match early_stop {
            Some(e) if e.objective.metric == m => e.objective.clone(),
            _ => Objective { mode: Mode::natural(&m), metric: m },
        }),
        (false, Some(e)) => Some(e.objective.clone()),
        (false, None) => Some(Objective::default()),
    };
    Some(CheckpointSpec {
        model_dir: model_dir?,
        save_every: save_every?,
        keep_max: keep_max?.min(u32::MAX as i64) as u32,
        keep_every,
        keep_best: keep_best?.min(u32::MAX as i64) as u32,
        best_by: best_by?,
    })
}

pub fn check_summaries(ctx: &mut Ctx, decl: Option<&Decl>) -> Option<SummariesSpec> {
    let f = super::block_fields(ctx, decl, "summaries", &["every", "log_every", "histograms"]);
    let every = if f.has("every") { f.steps(ctx, "every").map(|s| s.node) } else { Some(100) };
    let log_every = if f.has("log_every") { f.steps(ctx, "log_every").map(|s| s.node) } else { Some(100) };
    let histograms = if f.has("histograms") { f.bool(ctx, "histograms") } else { Some(true) };
    Some(SummariesSpec { every: every?, log_every: log_every?, histograms: histograms? })
}
