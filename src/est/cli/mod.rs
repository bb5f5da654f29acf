//! The `est` command line: its one clap definition (which `est-torch` parses too), dispatch and
//! exit codes. Library code returns errors; only the command line prints.

pub mod args;
mod diff;
mod export;
pub mod front;
pub mod guard;
mod inspect;

use std::io::IsTerminal;

use camino::Utf8PathBuf;
use clap::{Parser, Subcommand, ValueEnum};

use crate::checkpoint::Choice;

/// Exit codes, documented in `est --help` and README.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The pipeline has errors, or a run failed (bad data, I/O).
    pub const FAILED: i32 = 1;
    /// The command line itself was wrong.
    pub const USAGE: i32 = 2;
    /// model_dir holds checkpoints of another model or optimizer.
    pub const INCOMPATIBLE: i32 = 3;
    /// Stopped by Ctrl-C, after writing a checkpoint.
    pub const INTERRUPTED: i32 = 130;
}

/// The exit codes and a note on paths, after `--help`.
pub const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the pipeline has errors, or the run failed (the message says where)
  2  the command line is wrong
  3  model_dir holds checkpoints of another model or optimizer (`est diff`: they differ)
  130  interrupted by Ctrl-C (a checkpoint was written first)

Paths inside a .est file are relative to the folder that holds it.";

/// The whole command line, as `est` and `est-torch` both parse it.
#[derive(Parser, Debug)]
#[command(name = "est", version, about = "Declarative model training: .est pipelines compiled to libtorch", after_help = AFTER_HELP)]
pub struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour diagnostics.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Color {
    /// When stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a pipeline: prints its errors, or one line when there are none.
    Check {
        /// The .est file.
        file: Utf8PathBuf,
    },
    /// Print the checked plan, every default explicit, with its fingerprints.
    Compile {
        /// The .est file.
        file: Utf8PathBuf,
        /// Print JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Train: restore the latest checkpoint in model_dir, train, write checkpoints.
    Train(args::TrainArgs),
    /// Evaluate a checkpoint (the latest, or --checkpoint best|STEP) and print tf.estimator's metrics.
    Evaluate(args::EvaluateArgs),
    /// Predict rows of a CSV with a checkpoint (the latest, or --checkpoint best|STEP).
    Predict(args::PredictArgs),
    /// Export a checkpoint as an ONNX model that runs without est, preprocessing included.
    Export(args::ExportArgs),
    /// Print the ids an exported model's id inputs take, one JSON object per row of a CSV.
    Featurize(args::FeaturizeArgs),
    /// Train, and retrain whenever the .est file or its data change (Ctrl-C to stop).
    Watch(args::WatchArgs),
    /// Show what changed between a model_dir (or a .est file) and a .est file, as the guard would.
    Diff {
        /// A model_dir (its latest checkpoint's plan) or a .est file.
        old: Utf8PathBuf,
        /// The .est file.
        new: Utf8PathBuf,
    },
    /// Write a run report: the spec, the checkpoints, the last metrics and the curves (SVG).
    Report {
        /// The model_dir to report on.
        model_dir: Utf8PathBuf,
        /// Where to write it (`-` for standard output). Default: MODEL_DIR/report.html (or .md).
        #[arg(long)]
        out: Option<Utf8PathBuf>,
        /// HTML or Markdown.
        #[arg(long, value_enum, default_value_t = args::ReportFormat::Html)]
        format: args::ReportFormat,
    },
    /// List a model_dir's checkpoints, the plan they were trained with and the last evaluation.
    Inspect {
        /// The model_dir to list.
        model_dir: Utf8PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Whether to colour diagnostics: `--color`, then `NO_COLOR` and whether stderr is a terminal.
pub fn use_color(choice: Color) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
    }
}

/// The command line, or the exit code once clap has printed help, the version or a usage error.
pub fn parse<C: clap::Parser>() -> Result<C, i32> {
    C::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            exit::USAGE
        } else {
            exit::OK
        }
    })
}

/// What runs the commands that need libtorch: `est` hands them to `est-torch`, which runs them.
pub trait Training {
    /// `est train`.
    fn train(&self, args: &args::TrainArgs, color: bool) -> i32;
    /// `est evaluate`.
    fn evaluate(&self, args: &args::EvaluateArgs, color: bool) -> i32;
    /// `est predict`.
    fn predict(&self, args: &args::PredictArgs, color: bool) -> i32;
    /// `est watch`.
    fn watch(&self, args: &args::WatchArgs, color: bool) -> i32;
}

/// The `est` binary: runs the command line and returns the process exit code.
pub fn main() -> i32 {
    run(&Delegate)
}

/// Parses the command line and runs it, the training commands through `training`.
pub fn run(training: &dyn Training) -> i32 {
    let cli = match parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let color = use_color(cli.color);
    match cli.command {
        Command::Check { file } => front::check(&file, color),
        Command::Compile { file, json } => front::compile(&file, json, color),
        Command::Train(args) => training.train(&args, color),
        Command::Evaluate(args) => training.evaluate(&args, color),
        Command::Predict(args) => training.predict(&args, color),
        Command::Watch(args) => training.watch(&args, color),
        Command::Export(args) => export::export(&args, color),
        Command::Featurize(args) => export::featurize(&args, color),
        Command::Diff { old, new } => diff::diff(&old, &new, color),
        Command::Inspect { model_dir, json } => inspect::inspect(&model_dir, json),
        Command::Report { model_dir, out, format } => report(&model_dir, out.as_deref(), format),
    }
}

/// The training commands as `est` runs them: the guard here, in milliseconds, before libtorch
/// is loaded; the command itself in `est-torch`.
struct Delegate;

impl Training for Delegate {
    fn train(&self, args: &args::TrainArgs, color: bool) -> i32 {
        guarded("train", &args.file, args.model_dir.as_deref(), args.allow(), Choice::Latest, color)
    }

    fn evaluate(&self, args: &args::EvaluateArgs, color: bool) -> i32 {
        guarded("evaluate", &args.file, args.model_dir.as_deref(), guard::Allow::default(), args.checkpoint, color)
    }

    fn predict(&self, args: &args::PredictArgs, color: bool) -> i32 {
        guarded("predict", &args.file, args.model_dir.as_deref(), guard::Allow::default(), args.checkpoint, color)
    }

    fn watch(&self, _: &args::WatchArgs, _: bool) -> i32 {
        delegate()
    }
}

fn report(dir: &camino::Utf8Path, out: Option<&camino::Utf8Path>, format: args::ReportFormat) -> i32 {
    let rendered = crate::report::gather(dir).and_then(|r| match format {
        args::ReportFormat::Html => crate::report::html(&r),
        args::ReportFormat::Md => crate::report::markdown(&r),
    });
    let text = match rendered {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    let default = dir.join(match format {
        args::ReportFormat::Html => "report.html",
        args::ReportFormat::Md => "report.md",
    });
    let path = out.unwrap_or(&default);
    if path == "-" {
        print!("{text}");
        return exit::OK;
    }
    match crate::checkpoint::atomic::write(path, text.as_bytes()) {
        Ok(()) => {
            println!("wrote {path}");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot write `{path}`: {e}");
            exit::FAILED
        }
    }
}

/// Refuses an incompatible checkpoint, then hands the command to `est-torch`.
fn guarded(
    command: &str,
    file: &camino::Utf8Path,
    model_dir: Option<&camino::Utf8Path>,
    allow: guard::Allow,
    choice: Choice,
    color: bool,
) -> i32 {
    let (source, compiled) = match front::load(file, color) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let dir = guard::model_dir(&compiled, model_dir);
    if let Err(code) = guard::check(command, &compiled, &source, &dir, allow, choice) {
        return code;
    }
    delegate()
}

/// Hands the training commands to `est-torch`, beside this binary, which links libtorch.
fn delegate() -> i32 {
    let Some(torch) = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("est-torch"))) else {
        eprintln!("error: cannot find where est is installed");
        return exit::FAILED;
    };
    if !torch.exists() {
        eprintln!(
            "error: training needs `{}`, which is not there: only the `est` crate was built \
             (`cargo build -p est`); build both with `scripts/demo` or `cargo build --release`",
            torch.display()
        );
        return exit::FAILED;
    }
    let mut command = std::process::Command::new(&torch);
    command.args(std::env::args_os().skip(1));
    // libtorch's OpenMP threads spin about 300,000 times at each barrier before they sleep: on a
    // machine with another busy process, a spinning thread holds the core the thread it waits
    // for needs (the Criteo-shaped run fell from 90 to 36 steps/s beside one busy loop). 5,000
    // spins kept 66 there and cost nothing measurable alone. Read when est-torch loads, so set
    // here; a user's own OpenMP setting wins.
    if std::env::var_os("GOMP_SPINCOUNT").is_none() && std::env::var_os("OMP_WAIT_POLICY").is_none() {
        command.env("GOMP_SPINCOUNT", "5000");
    }
    exec(command, &torch)
}

#[cfg(unix)]
fn exec(mut command: std::process::Command, path: &std::path::Path) -> i32 {
    use std::os::unix::process::CommandExt;
    // Replaces this process, so signals and the exit code are est-torch's own.
    let error = command.exec();
    eprintln!("error: cannot run `{}`: {error}", path.display());
    exit::FAILED
}

#[cfg(not(unix))]
fn exec(mut command: std::process::Command, path: &std::path::Path) -> i32 {
    match command.status() {
        Ok(status) => status.code().unwrap_or(exit::FAILED),
        Err(error) => {
            eprintln!("error: cannot run `{}`: {error}", path.display());
            exit::FAILED
        }
    }
}
