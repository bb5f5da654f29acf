//! `est inspect MODEL_DIR`: the checkpoints, the plan they were trained with, the last evaluation.

use camino::Utf8Path;
use serde::Serialize;

use super::exit;
use crate::checkpoint::format::read_meta;
use crate::checkpoint::{Evaluation, Manifest, Store};
use crate::plan::fingerprint;
use crate::plan::Plan;

#[derive(Serialize)]
struct Inspection<'a> {
    model_dir: &'a Utf8Path,
    manifest: &'a Manifest,
    plan: &'a Plan,
    evaluation: Option<Evaluation>,
    /// The checkpoints evaluated during training, best first by `best_by`.
    best: Vec<Best<'a>>,
}

#[derive(Serialize)]
struct Best<'a> {
    file: &'a str,
    step: u64,
    metric: &'a str,
    value: f64,
}

pub fn inspect(dir: &Utf8Path, json: bool) -> i32 {
    let store = Store::new(dir);
    if !dir.is_dir() {
        eprintln!("error: `{dir}` is not a folder");
        return exit::FAILED;
    }
    let manifest = match store.manifest() {
        Ok(Some(m)) => m,
        Ok(None) => {
            eprintln!("error: no checkpoint in `{dir}`");
            return exit::FAILED;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let latest =
        manifest.latest.clone().or_else(|| manifest.checkpoints.last().map(|e| e.file.clone())).unwrap_or_default();
    let meta = match read_meta(&dir.join(&latest)) {
        Ok(meta) => meta,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", dir.join(&latest));
            return exit::FAILED;
        }
    };
    let evaluation = match store.last_evaluation() {
        Ok(evaluation) => evaluation,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let objective = &meta.plan.checkpoint.best_by;
    let ranked = manifest.best(objective);
    // The ones keep_best keeps, or the single best when it keeps none.
    let marked = ranked.len().min(meta.plan.checkpoint.keep_best.max(1) as usize);
    if json {
        let best = ranked
            .iter()
            .map(|(e, value)| Best { file: &e.file, step: e.step, metric: &objective.metric, value: *value })
            .collect();
        let inspection = Inspection { model_dir: dir, manifest: &manifest, plan: &meta.plan, evaluation, best };
        match serde_json::to_string_pretty(&inspection) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot encode: {e}");
                return exit::FAILED;
            }
        }
        return exit::OK;
    }
    let plan = &meta.plan;
    let n = manifest.checkpoints.len();
    println!(
        "{dir}: pipeline `{}` ({}), {n} {}, latest {latest}",
        plan.pipeline,
        plan.source,
        crate::diagnostic::plural(n, "checkpoint", "checkpoints")
    );
    println!();
    let width = manifest.checkpoints.iter().map(|e| e.step.to_string().len()).max().unwrap_or(4).max(4);
    let header = format!(
        "  {:>width$}  {:<20}  {:>9}  {:<12}  {:<16}  {:<16}",
        "step", "written", "bytes", "sha256", "model", "optimizer"
    );
    println!("{}", header.trim_end());
    for e in &manifest.checkpoints {
        let mut notes = Vec::new();
        if e.file == latest {
            notes.push("latest".to_string());
        }
        if e.preserved {
            notes.push("kept for good".into());
        }
        if let Some(rank) = ranked[..marked].iter().position(|(b, _)| b.file == e.file) {
            let value = crate::stopping::significant(ranked[rank].1, 4);
            let which = if rank == 0 { "best".to_string() } else { format!("best {}", rank + 1) };
            notes.push(format!("{which}: {} = {value}", objective.metric));
        }
        let notes = if notes.is_empty() { String::new() } else { format!("  ({})", notes.join(", ")) };
        println!(
            "  {:>width$}  {:<20}  {:>9}  {:<12}  {:<16}  {:<16}{notes}",
            e.step,
            e.time,
            e.size,
            &e.sha256[..12.min(e.sha256.len())],
            e.fingerprint.model,
            e.fingerprint.optimizer
        );
    }
    println!();
    println!("Trained with:");
    let model = fingerprint::model_fields(plan);
    let optimizer = fingerprint::optimizer_fields(plan);
    let training = crate::diff::training_fields(plan);
    let width = model.keys().chain(optimizer.keys()).chain(training.keys()).map(|k| k.len()).max().unwrap_or(0);
    for (k, v) in model.iter().chain(&optimizer).chain(&training) {
        println!("  {k:<width$}  {v}");
    }
    if !manifest.evaluations.is_empty() {
        let mode = match objective.mode {
            crate::pipeline::Mode::Min => "lower is better",
            crate::pipeline::Mode::Max => "higher is better",
        };
        println!("Evaluations during training (best by {}, {mode}):", objective.metric);
        let best = ranked.first().map(|(b, _)| b.file.as_str());
        let width = manifest.evaluations.iter().map(|e| e.global_step.to_string().len()).max().unwrap_or(1);
        for e in &manifest.evaluations {
            let file = e.checkpoint.as_deref().unwrap_or("");
            let kept = manifest.checkpoints.iter().any(|c| c.file == file);
            let metrics: Vec<String> = e.metrics.iter().map(|(k, v)| format!("{k} = {}", *v as f32)).collect();
            let mark = if best == Some(file) { "  (best)" } else { "" };
            let gone = if kept { "" } else { ", removed" };
            println!(
                "  step {:>width$}  {}{gone}: {}{mark}",
                e.global_step,
                file.trim_end_matches(".safetensors"),
                metrics.join(", ")
            );
        }
        println!();
    }
    match evaluation {
        Some(e) => {
            let metrics: Vec<String> = e.metrics.iter().map(|(k, v)| format!("{k} = {}", *v as f32)).collect();
            println!("Last evaluation: step {} on {} at {}: {}", e.global_step, e.data, e.time, metrics.join(", "));
        }
        None => println!("Last evaluation: none yet (`est evaluate`)"),
    }
    exit::OK
}
