//! Reports edits to a set of files. Folders are watched rather than files, so an editor's
//! save-by-rename (write a temporary file, rename it over the original) is seen; events are
//! debounced, filtered down to the files asked for, and sent on as one batch.

use std::collections::BTreeSet;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache};

/// Watches until dropped.
pub struct FileWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// A folder that could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch `{path}`: {source}")]
pub struct WatchError {
    /// The folder.
    pub path: Utf8PathBuf,
    /// The watcher's reason.
    pub source: notify::Error,
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
        let changed = edits(&events, &filter);
        if !changed.is_empty() {
            // The receiver is gone only when watching ends.
            let _ = tx.send(changed);
        }
    })
    .map_err(|source| WatchError { path: Utf8PathBuf::from("."), source })?;
    let folders: BTreeSet<&Utf8Path> = wanted.iter().filter_map(|f| f.parent()).collect();
    for folder in folders {
        debouncer
            .watch(folder.as_std_path(), RecursiveMode::NonRecursive)
            .map_err(|source| WatchError { path: folder.to_owned(), source })?;
    }
    Ok((FileWatcher { _debouncer: debouncer }, rx))
}

/// The files among `wanted` that a batch of events changed, sorted, each once. Reading a file
/// (training reads the data every run) is not an edit.
pub fn edits(events: &[DebouncedEvent], wanted: &BTreeSet<Utf8PathBuf>) -> Vec<Utf8PathBuf> {
    let mut changed: Vec<Utf8PathBuf> = events
        .iter()
        .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
        .flat_map(|e| e.event.paths.iter().cloned())
        .filter_map(|p| Utf8PathBuf::from_path_buf(p).ok())
        .filter(|p| wanted.contains(p))
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};
    use notify::Event;

    use super::*;

    fn event(kind: EventKind, paths: &[&str]) -> DebouncedEvent {
        let event = paths.iter().fold(Event::new(kind), |e, p| e.add_path(p.into()));
        DebouncedEvent::new(event, Instant::now())
    }

    #[test]
    fn only_edits_of_the_watched_files_count() {
        let wanted: BTreeSet<Utf8PathBuf> = ["/p/iris.est", "/p/data/train.csv"].map(Utf8PathBuf::from).into();
        let events = [
            // An editor's save: a temporary file, then a rename over the original.
            event(EventKind::Create(CreateKind::File), &["/p/.iris.est.swp"]),
            event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/p/.iris.est.swp", "/p/iris.est"]),
            event(EventKind::Modify(ModifyKind::Any), &["/p/iris.est"]),
            // Training reading its data.
            event(EventKind::Access(AccessKind::Any), &["/p/data/train.csv"]),
            event(EventKind::Modify(ModifyKind::Any), &["/p/notes.txt"]),
        ];
        assert_eq!(edits(&events, &wanted), vec![Utf8PathBuf::from("/p/iris.est")]);
        let data = [event(EventKind::Modify(ModifyKind::Any), &["/p/data/train.csv", "/p/iris.est"])];
        assert_eq!(edits(&data, &wanted), ["/p/data/train.csv", "/p/iris.est"].map(Utf8PathBuf::from));
        assert!(edits(&events[3..], &wanted).is_empty());
    }
}
