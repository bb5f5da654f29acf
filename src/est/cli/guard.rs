//! The fingerprint guard as the command line applies it: compares the plan with the latest
//! checkpoint's header (no tensor is read) and decides whether a command may go on.

use camino::{Utf8Path, Utf8PathBuf};

use super::exit;
use crate::checkpoint::{CheckpointError, Choice, Entry, Store};
use crate::diff::report::{self, Mode};
use crate::diff::{self, Diff, NewSource};
use crate::{Compiled, Source};

/// What the user allowed for a checkpoint of another model or optimizer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allow {
    /// `--fresh`.
    pub fresh: bool,
    /// `--warm-start`.
    pub warm_start: bool,
    /// `--reset-optimizer`.
    pub reset_optimizer: bool,
}

/// The model_dir a command uses: `--model-dir` (relative to the current folder) or the plan's.
pub fn model_dir(compiled: &Compiled, flag: Option<&Utf8Path>) -> Utf8PathBuf {
    flag.map_or_else(|| compiled.plan.checkpoint.model_dir.clone(), Utf8Path::to_owned)
}

/// `dir` as short as it can be said from the current folder.
pub fn display(dir: &Utf8Path) -> String {
    let cwd = std::env::current_dir().ok().and_then(|c| Utf8PathBuf::from_path_buf(c).ok());
    match cwd.as_deref().and_then(|c| dir.strip_prefix(c).ok()) {
        Some(relative) if !relative.as_str().is_empty() => relative.to_string(),
        _ => dir.to_string(),
    }
}

/// The checkpoint `choice` names in `dir` compared with the plan, or `None` when there is none.
pub fn compare(
    compiled: &Compiled,
    source: &Source,
    dir: &Utf8Path,
    choice: Choice,
) -> Result<Option<(Entry, Diff)>, CheckpointError> {
    let best_by = &compiled.plan.checkpoint.best_by;
    let Some((entry, meta)) = Store::new(dir).chosen_meta(choice, best_by)? else { return Ok(None) };
    let new = NewSource { spans: &compiled.spans, text: &source.text };
    Ok(Some((entry, diff::diff(&meta.plan, &compiled.plan, Some(&new)))))
}

/// Checks `command` against the checkpoint `choice` names in model_dir. `Ok(Some(line))` when
/// training settings changed since the checkpoint; `Err(code)` when the command must stop (the
/// report is printed).
pub fn check(
    command: &str,
    compiled: &Compiled,
    source: &Source,
    dir: &Utf8Path,
    allow: Allow,
    choice: Choice,
) -> Result<Option<String>, i32> {
    let (entry, diff) = match compare(compiled, source, dir, choice) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("error: {e}");
            return Err(exit::FAILED);
        }
    };
    let fingerprint = &compiled.plan.fingerprint;
    let model_ok = entry.fingerprint.model == fingerprint.model;
    let optimizer_ok = entry.fingerprint.optimizer == fingerprint.optimizer || command != "train";
    let allowed = match (model_ok, optimizer_ok) {
        (true, true) => true,
        (true, false) => allow.fresh || allow.warm_start || allow.reset_optimizer,
        (false, _) => command == "train" && (allow.fresh || allow.warm_start),
    };
    if !allowed {
        let shown = display(dir);
        let mode = Mode::Guard { command, model_dir: &shown, checkpoint: &entry };
        let mut shown_diff = diff;
        if command != "train" {
            shown_diff.optimizer.clear();
        }
        eprint!("{}", report::render(&shown_diff, &mode, source.path.as_str()));
        return Err(exit::INCOMPATIBLE);
    }
    Ok((model_ok && !diff.training.is_empty()).then(|| diff.training_summary()))
}
