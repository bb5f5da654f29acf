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

pub fn check_checkpoint(
    ctx: &mut Ctx,
    decl: Option<&Decl>,
    base_dir: &Utf8Path,
    pipeline: &str,
) -> Option<CheckpointSpec> {
    let f = super::block_fields(ctx, decl, "checkpoint", &["model_dir", "save_every", "keep_max", "keep_every"]);
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
    Some(CheckpointSpec {
        model_dir: model_dir?,
        save_every: save_every?,
        keep_max: keep_max?.min(u32::MAX as i64) as u32,
        keep_every,
    })
}

pub fn check_summaries(ctx: &mut Ctx, decl: Option<&Decl>) -> Option<SummariesSpec> {
    let f = super::block_fields(ctx, decl, "summaries", &["every", "log_every", "histograms"]);
    let every = if f.has("every") { f.steps(ctx, "every").map(|s| s.node) } else { Some(100) };
    let log_every = if f.has("log_every") { f.steps(ctx, "log_every").map(|s| s.node) } else { Some(100) };
    let histograms = if f.has("histograms") { f.bool(ctx, "histograms") } else { Some(true) };
    Some(SummariesSpec { every: every?, log_every: log_every?, histograms: histograms? })
}
