//! Reports edits to a set of files. Folders are watched rather than files, so an editor's
//! save-by-rename (write a temporary file, rename it over the original) is seen; events are
//! debounced, filtered down to the files asked for, and sent on as one batch.

use std::collections::BTreeSet;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache};

use crate::pipeline::{is_glob, GLOB};

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

/// Watches `files`, paths or globs; each batch of changes among them (a new file a glob
/// matches included) arrives on the receiver.
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
    let folders: BTreeSet<(Utf8PathBuf, bool)> = wanted.iter().filter_map(|f| folder(f)).collect();
    for (folder, recursive) in &folders {
        let mode = if *recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        debouncer.watch(folder.as_std_path(), mode).map_err(|source| WatchError { path: folder.clone(), source })?;
    }
    Ok((FileWatcher { _debouncer: debouncer }, rx))
}

/// The folder to watch for a path or glob: a path's own folder, or the folder above a glob's
/// first wild part, watched recursively when the glob reaches further down.
fn folder(entry: &Utf8Path) -> Option<(Utf8PathBuf, bool)> {
    if !is_glob(entry.as_str()) {
        return entry.parent().map(|p| (p.to_owned(), false));
    }
    let parts: Vec<&str> = entry.components().map(|c| c.as_str()).collect();
    let wild = parts.iter().position(|p| is_glob(p))?;
    let base: Utf8PathBuf = parts[..wild].iter().collect();
    Some((base, parts.len() - wild > 1))
}

/// The files among `wanted` (paths, or globs they match) that a batch of events changed,
/// sorted, each once. Reading a file (training reads the data every run) is not an edit.
pub fn edits(events: &[DebouncedEvent], wanted: &BTreeSet<Utf8PathBuf>) -> Vec<Utf8PathBuf> {
    let globs: Vec<glob::Pattern> =
        wanted.iter().filter(|w| is_glob(w.as_str())).filter_map(|w| glob::Pattern::new(w.as_str()).ok()).collect();
    let mut changed: Vec<Utf8PathBuf> = events
        .iter()
        .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
        .flat_map(|e| e.event.paths.iter().cloned())
        .filter_map(|p| Utf8PathBuf::from_path_buf(p).ok())
        .filter(|p| wanted.contains(p) || globs.iter().any(|g| g.matches_path_with(p.as_std_path(), GLOB)))
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

    #[test]
    fn a_new_file_a_glob_matches_is_an_edit() {
        let wanted: BTreeSet<Utf8PathBuf> = ["/p/iris.est", "/p/data/part-*.csv.gz"].map(Utf8PathBuf::from).into();
        let events = [
            event(EventKind::Create(CreateKind::File), &["/p/data/part-0003.csv.gz"]),
            event(EventKind::Create(CreateKind::File), &["/p/data/.part-0004.csv.gz.tmp"]),
            event(EventKind::Modify(ModifyKind::Any), &["/p/data/other.csv.gz"]),
            event(EventKind::Modify(ModifyKind::Any), &["/p/data/sub/part-1.csv.gz"]),
        ];
        assert_eq!(edits(&events, &wanted), vec![Utf8PathBuf::from("/p/data/part-0003.csv.gz")]);
        assert_eq!(folder("/p/data/part-*.csv.gz".into()), Some(("/p/data".into(), false)));
        assert_eq!(folder("/p/*/part.csv".into()), Some(("/p".into(), true)));
        assert_eq!(folder("/p/data/train.csv".into()), Some(("/p/data".into(), false)));
    }
}
