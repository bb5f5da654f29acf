//! Reports edits to a set of files. Folders are watched rather than files, so an editor's
//! save-by-rename (write a temporary file, rename it over the original) is seen; events are
//! debounced, filtered down to the files asked for, and sent on as one batch.

use std::collections::BTreeSet;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

pub struct FileWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch `{path}`: {reason}")]
pub struct WatchError {
    pub path: Utf8PathBuf,
    pub reason: String,
}

/// Watches `files`; each batch of changes among them arrives on the receiver.
pub fn watch(
    files: &[Utf8PathBuf],
    debounce: Duration,
) -> Result<(FileWatcher, Receiver<Vec<Utf8PathBuf>>), WatchError> {
    let wanted: BTreeSet<Utf8PathBuf> = files.iter().cloned().collect();
    let (tx, rx) = channel();
    let filter = wanted.clone();
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        // Reading a file (training reads the data every run) is not an edit.
        let mut changed: Vec<Utf8PathBuf> = events
            .into_iter()
            .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
            .flat_map(|e| e.event.paths.clone())
            .filter_map(|p| Utf8PathBuf::from_path_buf(p).ok())
            .filter(|p| filter.contains(p))
            .collect();
        changed.sort();
        changed.dedup();
        if !changed.is_empty() {
            // The receiver is gone only when watching ends.
            let _ = tx.send(changed);
        }
    })
    .map_err(|e| WatchError { path: Utf8PathBuf::from("."), reason: e.to_string() })?;
    let folders: BTreeSet<&Utf8Path> = wanted.iter().filter_map(|f| f.parent()).collect();
    for folder in folders {
        debouncer
            .watch(folder.as_std_path(), RecursiveMode::NonRecursive)
            .map_err(|e| WatchError { path: folder.to_owned(), reason: e.to_string() })?;
    }
    Ok((FileWatcher { _debouncer: debouncer }, rx))
}
