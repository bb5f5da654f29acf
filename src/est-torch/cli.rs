//! The training commands as the command line runs them (`est train`, `evaluate`, `predict`,
//! `watch`): arguments in, lines out, an exit code back. `est` hands them over; `est-torch`
//! parses the same command line.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::console::Console;
use crate::train::{self, RunOptions, Start, Summary, TrainError};
use est::checkpoint::Choice;
use est::cli::args::{EvaluateArgs, PredictArgs, PredictFormat, TrainArgs, WatchArgs};
use est::cli::guard::{self, Allow};
use est::cli::{exit, front, Training};
use est::pipeline::Files;
use est::plan::Plan;

/// The training commands, run in this process.
pub struct Torch;

impl Training for Torch {
    fn train(&self, args: &TrainArgs, color: bool) -> i32 {
        train_command(args, color)
    }

    fn evaluate(&self, args: &EvaluateArgs, color: bool) -> i32 {
        evaluate_command(args, color)
    }

    fn predict(&self, args: &PredictArgs, color: bool) -> i32 {
        predict_command(args, color)
    }

    fn watch(&self, args: &WatchArgs, _: bool) -> i32 {
        crate::watch::run(args)
    }
}

/// The plan, after the fingerprint guard (which `est` ran too, but this binary can be run alone).
fn load_plan(
    command: &str,
    file: &camino::Utf8Path,
    model_dir: Option<&camino::Utf8Path>,
    allow: Allow,
    choice: Choice,
    color: bool,
) -> Result<(Plan, Option<String>), i32> {
    let (source, compiled) = front::load(file, color)?;
    let dir = guard::model_dir(&compiled, model_dir);
    let changed = guard::check(command, &compiled, &source, &dir, allow, choice)?;
    Ok((compiled.plan, changed))
}

fn fail(e: &TrainError) -> i32 {
    eprintln!("error: {e}");
    match e {
        TrainError::NonFiniteLoss { .. } | TrainError::NonFiniteState { .. } => {
            eprintln!("help: lower the learning rate, or clip gradients with `clip_norm = 1.0` in the optimizer block");
            exit::FAILED
        }
        TrainError::IncompatibleModel { .. } | TrainError::IncompatibleOptimizer { .. } => {
            eprintln!("help: train into another folder with --model-dir, or move the old checkpoints away");
            exit::INCOMPATIBLE
        }
        _ => exit::FAILED,
    }
}

fn train_command(args: &TrainArgs, color: bool) -> i32 {
    if args.no_cache {
        est::data::cache::disable();
    }
    let (plan, changed) =
        match load_plan("train", &args.file, args.model_dir.as_deref(), args.allow(), Choice::Latest, color) {
            Ok(p) => p,
            Err(code) => return code,
        };
    if let Some(changed) = changed {
        eprintln!("note: changed since the checkpoint: {changed}");
    }
    let start = if args.fresh {
        Start::Fresh
    } else if args.warm_start {
        Start::WarmStart
    } else if args.reset_optimizer {
        Start::ResetOptimizer
    } else {
        Start::Resume
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // The first Ctrl-C asks for a checkpoint and a clean exit; a second one leaves at once
    // (every checkpoint write is atomic, so nothing on disk is left half-written).
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED);
        }
    });
    let opts = RunOptions {
        steps: args.steps,
        max_steps: args.max_steps,
        model_dir: args.model_dir.clone(),
        start,
        ..RunOptions::default()
    };
    let mut progress = Console::new();
    let result = train::run(&plan, &opts, &mut progress, &stop);
    progress.finish();
    match result {
        Ok(Summary { stopped_early: Some(stopped), .. }) => {
            println!("{stopped}");
            exit::OK
        }
        Ok(summary) => {
            let rate = (summary.to_step - summary.from_step) as f64 / summary.seconds.max(1e-9);
            let loss = summary.last_loss.map_or(String::new(), |l| format!(", loss {}", l as f32));
            let checkpoint = summary
                .checkpoint
                .as_ref()
                .map_or(String::new(), |e| format!("; checkpoint {}", summary.model_dir.join(&e.file)));
            println!(
                "{} {}: step {} → {} in {:.2} s ({:.0} steps/s){loss}{checkpoint}",
                if summary.interrupted { "interrupted" } else { "trained" },
                plan.pipeline,
                summary.from_step,
                summary.to_step,
                summary.seconds,
                rate
            );
            if summary.interrupted {
                exit::INTERRUPTED
            } else {
                exit::OK
            }
        }
        Err(e) => fail(&e),
    }
}

fn evaluate_command(args: &EvaluateArgs, color: bool) -> i32 {
    if args.no_cache {
        est::data::cache::disable();
    }
    let (plan, _) =
        match load_plan("evaluate", &args.file, args.model_dir.as_deref(), Allow::default(), args.checkpoint, color) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let opts = RunOptions { model_dir: args.model_dir.clone(), checkpoint: args.checkpoint, ..RunOptions::default() };
    match train::evaluate::run(&plan, &opts, args.data.clone().map(Files::one).as_ref()) {
        Ok(metrics) => {
            for w in &metrics.warnings {
                eprintln!("warning: {w}");
            }
            if args.json {
                let mut object = serde_json::Map::new();
                for (k, v) in &metrics.values {
                    object.insert(k.clone(), serde_json::json!(v));
                }
                object.insert("global_step".into(), serde_json::json!(metrics.global_step));
                println!("{}", serde_json::Value::Object(object));
            } else {
                println!("{metrics}");
            }
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

fn predict_command(args: &PredictArgs, color: bool) -> i32 {
    if args.no_cache {
        est::data::cache::disable();
    }
    let (plan, _) =
        match load_plan("predict", &args.file, args.model_dir.as_deref(), Allow::default(), args.checkpoint, color) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let Some(input) = args.input.clone().map(Files::one).or_else(|| plan.data.predict.clone()) else {
        eprintln!("error: nothing to predict: pass --input CSV or set `predict` in the `data` block");
        return exit::USAGE;
    };
    let opts = RunOptions { model_dir: args.model_dir.clone(), checkpoint: args.checkpoint, ..RunOptions::default() };
    let predictions = match train::predict::run(&plan, &opts, &input) {
        Ok((predictions, warnings)) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            predictions
        }
        Err(e) => return fail(&e),
    };
    let csv = args.format == PredictFormat::Csv;
    let result = match &args.output {
        Some(path) => {
            let mut bytes = Vec::new();
            train::predict::write(&predictions, &plan, csv, &mut bytes)
                .and_then(|()| est::checkpoint::atomic::write(path, &bytes))
                .map_err(|e| format!("cannot write `{path}`: {e}"))
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            train::predict::write(&predictions, &plan, csv, &mut lock)
                .and_then(|()| lock.flush())
                .map_err(|e| format!("cannot write the predictions: {e}"))
        }
    };
    match result {
        Ok(()) => exit::OK,
        Err(message) => {
            eprintln!("error: {message}");
            exit::FAILED
        }
    }
}
