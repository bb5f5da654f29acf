//! The `est` command line: argument parsing, dispatch, exit codes. Library code returns errors;
//! only this module prints.

mod front;

use std::io::IsTerminal;

use camino::Utf8PathBuf;
use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes, documented in `est --help` and README.
pub mod exit {
    pub const OK: i32 = 0;
    /// The pipeline has errors, or a run failed (bad data, I/O).
    pub const FAILED: i32 = 1;
    /// The command line itself was wrong.
    pub const USAGE: i32 = 2;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the pipeline has errors, or the run failed (the message says where)
  2  the command line is wrong

Paths inside a .est file are relative to the folder that holds it.";

#[derive(Parser, Debug)]
#[command(name = "est", version, about = "Declarative model training: .est pipelines compiled to libtorch", after_help = AFTER_HELP)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
enum Command {
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
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
    };
    match cli.command {
        Command::Check { file } => front::check(&file, color),
        Command::Compile { file, json } => front::compile(&file, json, color),
    }
}
