//! `est check` and `est compile`: the front half only, no libtorch.

use camino::Utf8Path;

use super::exit;
use crate::render;
use crate::{Compiled, Source};

/// Reads and compiles `file`, printing what went wrong on stderr.
pub fn load(file: &Utf8Path, color: bool) -> Result<(Source, Compiled), i32> {
    let source = Source::read(file).map_err(|e| {
        eprintln!("error: {e}");
        exit::FAILED
    })?;
    let base = source.base_dir().map_err(|e| {
        eprintln!("error: {e}");
        exit::FAILED
    })?;
    match crate::compile(&source, &base) {
        Ok(compiled) => Ok((source, compiled)),
        Err(diagnostics) => {
            eprint!("{}", render::render(&diagnostics, source.path.as_str(), &source.text, color));
            Err(exit::FAILED)
        }
    }
}

/// `est check`: the errors, or one line.
pub fn check(file: &Utf8Path, color: bool) -> i32 {
    match load(file, color) {
        Ok((source, compiled)) => {
            println!(
                "ok: `{}` (pipeline `{}`, model {}, optimizer {})",
                source.path,
                compiled.plan.pipeline,
                compiled.plan.fingerprint.model,
                compiled.plan.fingerprint.optimizer
            );
            exit::OK
        }
        Err(code) => code,
    }
}

/// `est compile`: the plan as YAML or JSON.
pub fn compile(file: &Utf8Path, json: bool, color: bool) -> i32 {
    match load(file, color) {
        Ok((_, compiled)) => {
            if json {
                match serde_json::to_string_pretty(&compiled.plan) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: cannot encode the plan as JSON: {e}");
                        return exit::FAILED;
                    }
                }
            } else {
                print!("{}", compiled.plan.to_yaml());
            }
            exit::OK
        }
        Err(code) => code,
    }
}
