//! The libtorch half of est: `est train`, `est evaluate` and `est predict` run here, handed
//! over by `est`, which does not link libtorch.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use est::checkpoint::Entry;
use est::cli::args::{EvaluateArgs, PredictArgs, PredictFormat, TrainArgs};
use est::cli::guard::{self, Allow};
use est::cli::{exit, front, Color};
use est::plan::Plan;
use est::train::{self, Metrics, Progress, RunOptions, Start, TrainError};

#[derive(Parser, Debug)]
#[command(name = "est", version, after_help = est::cli::AFTER_HELP)]
struct Cli {
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Train(TrainArgs),
    Evaluate(EvaluateArgs),
    Predict(PredictArgs),
}

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        let first = message.lines().next().unwrap_or(message);
        eprintln!("error: internal error in est: {first}\nThis is a bug in est; please report it with the .est file.");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    let color = est::cli::use_color(cli.color);
    match cli.command {
        Command::Train(args) => train_command(&args, color),
        Command::Evaluate(args) => evaluate_command(&args, color),
        Command::Predict(args) => predict_command(&args, color),
    }
}

/// The plan, after the fingerprint guard (which `est` ran too, but this binary can be run alone).
fn load_plan(
    command: &str,
    file: &camino::Utf8Path,
    model_dir: Option<&camino::Utf8Path>,
    allow: Allow,
    color: bool,
) -> Result<(Plan, Option<String>), i32> {
    let (source, compiled) = front::load(file, color)?;
    let dir = guard::model_dir(&compiled, model_dir);
    let changed = guard::check(command, &compiled, &source, &dir, allow)?;
    Ok((compiled.plan, changed))
}

fn fail(e: &TrainError) -> i32 {
    eprintln!("error: {e}");
    match e {
        TrainError::IncompatibleModel { .. } | TrainError::IncompatibleOptimizer { .. } => {
            eprintln!("help: train into another folder with --model-dir, or move the old checkpoints away");
            exit::INCOMPATIBLE
        }
        _ => exit::FAILED,
    }
}

fn train_command(args: &TrainArgs, color: bool) -> i32 {
    let (plan, changed) = match load_plan("train", &args.file, args.model_dir.as_deref(), args.allow(), color) {
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
    let (plan, _) = match load_plan("evaluate", &args.file, args.model_dir.as_deref(), Allow::default(), color) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let opts = RunOptions { model_dir: args.model_dir.clone(), ..RunOptions::default() };
    match train::evaluate::run(&plan, &opts, args.data.as_deref()) {
        Ok(metrics) => {
            if args.json {
                let mut object = serde_json::Map::new();
                for (k, v) in &metrics.values {
                    object.insert(k.clone(), serde_json::json!(v));
                }
                object.insert("global_step".into(), serde_json::json!(metrics.global_step));
                println!("{}", serde_json::Value::Object(object));
            } else {
                println!("{}", metrics_line(&metrics));
            }
            exit::OK
        }
        Err(e) => fail(&e),
    }
}

/// `accuracy = 0.9667, average_loss = 0.0812, global_step = 1000, loss = 0.0812`, as TF logged.
fn metrics_line(metrics: &Metrics) -> String {
    let mut parts: Vec<String> = metrics.values.iter().map(|(k, v)| format!("{k} = {}", *v as f32)).collect();
    parts.push(format!("global_step = {}", metrics.global_step));
    parts.sort();
    parts.join(", ")
}

fn predict_command(args: &PredictArgs, color: bool) -> i32 {
    let (plan, _) = match load_plan("predict", &args.file, args.model_dir.as_deref(), Allow::default(), color) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(input) = args.input.clone().or_else(|| plan.data.predict.clone()) else {
        eprintln!("error: nothing to predict: pass --input CSV or set `predict` in the `data` block");
        return exit::USAGE;
    };
    let opts = RunOptions { model_dir: args.model_dir.clone(), ..RunOptions::default() };
    let predictions = match train::predict::run(&plan, &opts, &input) {
        Ok(p) => p,
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

/// Training progress on stderr: a bar on a terminal, `step = …, loss = …` lines otherwise.
struct Console {
    bar: Option<ProgressBar>,
    last_log: Option<(u64, Instant)>,
    /// The global step the run started from.
    first: u64,
}

impl Console {
    fn new() -> Console {
        Console { bar: None, last_log: None, first: 0 }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Console {
    fn restored(&mut self, entry: &Entry, warnings: &[String]) {
        for w in warnings {
            self.line(&format!("warning: {w}"));
        }
        self.line(&format!("restored {} (step {})", entry.file, entry.step));
    }

    fn started(&mut self, from: u64, to: u64) {
        if std::io::stderr().is_terminal() && to > from {
            let bar = ProgressBar::new(to - from);
            let style = ProgressStyle::with_template("{bar:30} step {msg} {per_sec:>12} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            self.bar = Some(bar);
        }
        self.first = from;
        self.last_log = Some((from, Instant::now()));
    }

    fn step(&mut self, step: u64, loss: Option<f64>) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if let Some(loss) = loss {
                bar.set_message(format!("{step}, loss {}", loss as f32));
            }
            return;
        }
        let Some(loss) = loss else { return };
        // The first step of a run pays for warm-up, so rates start after it.
        match self.last_log {
            Some((from, when)) if from > self.first => {
                let rate = (step - from) as f64 / when.elapsed().as_secs_f64().max(1e-9);
                eprintln!("step = {step}, loss = {}, steps/sec = {rate:.1}", loss as f32);
            }
            _ => eprintln!("step = {step}, loss = {}", loss as f32),
        }
        self.last_log = Some((step, Instant::now()));
    }

    fn saved(&mut self, entry: &Entry) {
        if self.bar.is_none() {
            self.line(&format!("saved {} (step {})", entry.file, entry.step));
        }
    }

    fn evaluated(&mut self, metrics: &Metrics) {
        self.line(&format!("eval: {}", metrics_line(metrics)));
    }

    fn note(&mut self, text: &str) {
        self.line(&format!("note: {text}"));
    }
}
