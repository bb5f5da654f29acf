//! Checkpoint writes off the training thread: the training thread copies the tensors to the host
//! and hands them over; encoding, hashing, writing, fsync and the manifest happen on a writer
//! thread. The next save waits for the previous one, so at most one is in flight.

use std::collections::BTreeMap;
use std::thread::JoinHandle;

use camino::Utf8PathBuf;

use crate::checkpoint::{CheckpointError, Entry, HostTensor, Meta, Retention, Store};

pub struct Saver {
    dir: Utf8PathBuf,
    retention: Retention,
    /// The checkpoint this run restored from, which retention must keep.
    protect: Option<String>,
    pending: Option<JoinHandle<Result<Entry, CheckpointError>>>,
}

impl Saver {
    pub fn new(dir: Utf8PathBuf, retention: Retention, protect: Option<String>) -> Saver {
        Saver { dir, retention, protect, pending: None }
    }

    /// Starts writing a checkpoint; returns the previous save's entry once it has finished.
    pub fn save(
        &mut self,
        meta: Meta,
        tensors: BTreeMap<String, HostTensor>,
    ) -> Result<Option<Entry>, CheckpointError> {
        let previous = self.wait()?;
        let (dir, retention, protect) = (self.dir.clone(), self.retention, self.protect.clone());
        self.pending =
            Some(std::thread::spawn(move || Store::new(&dir).save(&meta, &tensors, retention, protect.as_deref())));
        Ok(previous)
    }

    /// Waits for the save in flight, if any.
    pub fn wait(&mut self) -> Result<Option<Entry>, CheckpointError> {
        match self.pending.take() {
            None => Ok(None),
            Some(handle) => match handle.join() {
                Ok(result) => result.map(Some),
                Err(_) => Err(CheckpointError::Corrupt {
                    path: self.dir.clone(),
                    reason: "the checkpoint writer stopped unexpectedly".into(),
                }),
            },
        }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        // An error path still lets the write in flight finish: it is complete or not there at all.
        let _ = self.wait();
    }
}
