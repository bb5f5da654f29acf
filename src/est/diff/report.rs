//! Renders a [`Diff`] as the text users read, through a minijinja template (`report.jinja`).

use minijinja::{context, Environment};
use serde::Serialize;

use super::{Change, Diff, TensorChangeKind};
use crate::checkpoint::Entry;

const TEMPLATE: &str = include_str!("report.jinja");

/// What the report is about.
pub enum Mode<'a> {
    /// A command refused to restore the checkpoint in `model_dir`.
    Guard {
        /// `train`, `evaluate` or `predict`.
        command: &'a str,
        /// The model_dir, as shown.
        model_dir: &'a str,
        /// Its latest checkpoint.
        checkpoint: &'a Entry,
    },
    /// `est diff`, comparing `old` with `new`.
    OnDemand {
        /// The model_dir or `.est` file compared with, as shown.
        old: &'a str,
        /// The model_dir's latest checkpoint, when `old` is one.
        checkpoint: Option<&'a Entry>,
    },
    /// `est watch` saw an edit the run in `model_dir` cannot take; `action` says what it does.
    Watch {
        /// The model_dir, as shown.
        model_dir: &'a str,
        /// Its latest checkpoint, if any.
        checkpoint: Option<&'a Entry>,
        /// What watch mode does next.
        action: &'a str,
    },
}

#[derive(Serialize)]
struct Row {
    key: String,
    old: String,
    new: String,
    at: Option<String>,
}

#[derive(Serialize)]
struct TensorRow {
    name: String,
    change: String,
}

fn shape(s: &Option<Vec<u64>>) -> String {
    s.as_ref().map_or_else(String::new, |s| format!("{s:?}"))
}

/// `file` is the new `.est` file as the user named it.
pub fn render(diff: &Diff, mode: &Mode, file: &str) -> String {
    let rows = |changes: &[Change]| -> Vec<Row> {
        changes
            .iter()
            .map(|c| Row {
                key: c.key.clone(),
                old: c.old.clone().unwrap_or_else(|| "(none)".into()),
                new: c.new.clone().unwrap_or_else(|| "(removed)".into()),
                at: c.line.map(|l| format!("{file}:{l}")),
            })
            .collect()
    };
    let tensors: Vec<TensorRow> = diff
        .tensors
        .iter()
        .map(|t| TensorRow {
            name: t.name.clone(),
            change: match t.kind {
                TensorChangeKind::Added => format!("new, {}", shape(&t.new_shape)),
                TensorChangeKind::Removed => format!("gone, was {}", shape(&t.old_shape)),
                TensorChangeKind::Reshaped => format!("{} → {}", shape(&t.old_shape), shape(&t.new_shape)),
                TensorChangeKind::Reinterpreted => format!("{}, same shape, different meaning", shape(&t.new_shape)),
            },
        })
        .collect();
    let guard = matches!(mode, Mode::Guard { .. } | Mode::Watch { .. });
    let training: &[Change] = if guard { &[] } else { &diff.training };
    let shown: Vec<&Change> = diff.model.iter().chain(&diff.optimizer).chain(training).collect();
    let width = shown.iter().map(|c| c.key.chars().count()).max().unwrap_or(0);
    let tensor_width = tensors.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
    let total = diff.reusable.len() + diff.tensors.iter().filter(|t| t.kind != TensorChangeKind::Removed).count()
        - diff.tensors.iter().filter(|t| t.kind == TensorChangeKind::Reinterpreted).count();
    let (mode_name, command, model_dir, checkpoint, old_label, old_short) = match mode {
        Mode::Guard { command, model_dir, checkpoint } => {
            ("guard", *command, *model_dir, Some(*checkpoint), "the checkpoint".to_string(), "checkpoint".to_string())
        }
        Mode::OnDemand { old, checkpoint } => ("diff", "diff", "", *checkpoint, format!("`{old}`"), old.to_string()),
        Mode::Watch { model_dir, checkpoint, .. } => {
            ("watch", "watch", *model_dir, *checkpoint, "the run".to_string(), "run".to_string())
        }
    };
    let action = match mode {
        Mode::Watch { action, .. } => *action,
        _ => "",
    };
    let action_width = format!("est {command} {file} --reset-optimizer")
        .chars()
        .count()
        .max(format!("est {command} {file} --model-dir DIR").chars().count());

    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("pad", |s: String, n: usize| format!("{s:<n$}"));
    let result = env.render_str(
        TEMPLATE,
        context! {
            mode => mode_name,
            command => command,
            model_dir => model_dir,
            checkpoint => checkpoint,
            old_label => old_label,
            old_short => old_short,
            new_label => format!("`{file}`"),
            new_short => file,
            file => file,
            model => rows(&diff.model),
            optimizer => rows(&diff.optimizer),
            training => rows(&diff.training),
            tensors => tensors,
            width => width,
            tensor_width => tensor_width,
            action_width => action_width,
            action => action,
            reusable => diff.reusable.len(),
            total => total,
        },
    );
    // The template is part of est; a failure here is a bug, but the facts still get out.
    result.unwrap_or_else(|e| format!("error: cannot render the report ({e})\n{diff:#?}\n"))
}
