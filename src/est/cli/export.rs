//! `est export` and `est featurize`: a checkpoint as an ONNX model with its signature and
//! README, and the ids its hashed inputs take. Both run here, without libtorch.

use std::io::Write;

use super::args::{ExportArgs, FeaturizeArgs};
use super::guard::{self, Allow};
use super::{exit, front};
use crate::checkpoint::{Store, EXPORT_DIR};
use crate::data::{self, Purpose, Table};
use crate::export::{self, ExportError};
use crate::pipeline::Files;
use crate::plan::Plan;

/// Data files up to this size lend the README a real row; larger ones are not read for it.
const EXAMPLE_FILE_LIMIT: u64 = 16 << 20;

/// `est export`.
pub fn export(args: &ExportArgs, color: bool) -> i32 {
    let (source, compiled) = match front::load(&args.file, color) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let plan = &compiled.plan;
    let dir = guard::model_dir(&compiled, args.model_dir.as_deref());
    if let Err(code) = guard::check("export", &compiled, &source, &dir, Allow::default(), args.checkpoint) {
        return code;
    }
    let loaded = match Store::new(&dir).load_chosen(args.checkpoint, &plan.checkpoint.best_by) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => {
            eprintln!(
                "error: `{}` holds no checkpoint to export: train first (`est train {}`)",
                guard::display(&dir),
                args.file
            );
            return exit::FAILED;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let out = args.out.clone().unwrap_or_else(|| dir.join(EXPORT_DIR).join(loaded.entry.step.to_string()));
    // As short as it can be said from here: messages show it.
    let out = camino::Utf8PathBuf::from(guard::display(&out));
    let example = example(plan);
    let written = export::export(plan, &loaded.entry, &loaded.tensors, example.as_ref())
        .and_then(|e| export::write(&e, &out).map(|()| e));
    match written {
        Ok(e) => {
            let opsets = match e.signature.opset.ml {
                Some(ml) => format!("opset {}, ai.onnx.ml {ml}", e.signature.opset.onnx),
                None => format!("opset {}", e.signature.opset.onnx),
            };
            println!(
                "exported `{}` at step {} to {}: model.onnx ({opsets}; {} inputs, {} outputs), signature.json, README.md",
                plan.pipeline,
                loaded.entry.step,
                out,
                e.signature.inputs.len(),
                e.signature.outputs.len()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot export `{}`: {e}", args.file);
            exit::FAILED
        }
    }
}

/// A table of the pipeline's eval (or training) file, for the README's example row.
fn example(plan: &Plan) -> Option<Table> {
    let files = plan.data.eval.as_ref().unwrap_or(&plan.data.train);
    // The first file of the input holds the example row.
    let path = data::source::expand(files).ok()?.into_iter().next()?;
    let small = std::fs::metadata(&path).is_ok_and(|m| m.len() <= EXAMPLE_FILE_LIMIT);
    small.then(|| data::load_file(plan, &path, Purpose::Unlabelled).ok()).flatten().filter(|t| t.rows > 0)
}

/// `est featurize`.
pub fn featurize(args: &FeaturizeArgs, color: bool) -> i32 {
    let (_, compiled) = match front::load(&args.file, color) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let plan = &compiled.plan;
    let Some(input) = args.input.clone().map(Files::one).or_else(|| plan.data.predict.clone()) else {
        eprintln!("error: no rows to featurize: give --input CSV (the pipeline names no `predict` file)");
        return exit::USAGE;
    };
    let table = match data::load(plan, &input, Purpose::Unlabelled) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    if let Some(note) = table.skipped_note(&input) {
        eprintln!("warning: {note}; there is no line for them");
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match export::featurize::write(plan, &table, &mut out) {
        Ok(()) => exit::OK,
        // A reader that stopped early (`| head`) wanted no more.
        Err(ExportError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: {e}");
            let _ = out.flush();
            exit::FAILED
        }
    }
}
