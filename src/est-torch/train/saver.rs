//! Checkpoint writes off the training thread: the training thread copies the tensors to the host
//! and hands them over; encoding, hashing, writing, fsync and the manifest happen on one writer
//! thread that lives as long as the run, scheduled so that it never preempts training. One save
//! may wait behind the one being written, so a slow fsync does not stall training; a third
//! waits for the first, so at most two copies of the tensors are held.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use camino::Utf8PathBuf;

use est::checkpoint::{CheckpointError, Entry, Evaluation, HostTensor, Meta, Retention, Store};

/// A checkpoint to write, and its evaluation during training, which the same manifest write records.
type Job = (Meta, BTreeMap<String, HostTensor>, Option<Evaluation>);

pub struct Saver {
    dir: Utf8PathBuf,
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Result<Entry, CheckpointError>>,
    /// Saves handed over whose result has not been taken.
    in_flight: usize,
    writer: Option<JoinHandle<()>>,
}

impl Saver {
    /// `protect` is the checkpoint this run restored from, which retention must keep.
    pub fn new(dir: Utf8PathBuf, retention: Retention, protect: Option<String>) -> Saver {
        let (jobs, incoming) = sync_channel::<Job>(1);
        let (done, results) = sync_channel(2);
        let store = Store::new(&dir);
        let writer = std::thread::spawn(move || {
            batch_priority();
            for (meta, tensors, evaluation) in incoming {
                let saved = store.save(&meta, &tensors, retention, protect.as_deref(), evaluation.as_ref());
                if done.send(saved).is_err() {
                    break;
                }
            }
        });
        Saver { dir, jobs: Some(jobs), results, in_flight: 0, writer: Some(writer) }
    }

    /// Starts writing a checkpoint; returns the entries of earlier saves that have finished.
    /// Waits only when two saves are already in flight.
    pub fn save(
        &mut self,
        meta: Meta,
        tensors: BTreeMap<String, HostTensor>,
        evaluation: Option<Evaluation>,
    ) -> Result<Vec<Entry>, CheckpointError> {
        let mut finished = Vec::new();
        while self.in_flight > 0 {
            match self.results.try_recv() {
                Ok(result) => {
                    self.in_flight -= 1;
                    finished.push(result?);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(self.stopped()),
            }
        }
        if self.in_flight >= 2 {
            finished.push(self.next()?);
        }
        let job = (meta, tensors, evaluation);
        self.jobs.as_ref().ok_or_else(|| self.stopped())?.send(job).map_err(|_| self.stopped())?;
        self.in_flight += 1;
        Ok(finished)
    }

    /// Waits for every save in flight; their entries, in order.
    pub fn wait(&mut self) -> Result<Vec<Entry>, CheckpointError> {
        let mut finished = Vec::new();
        while self.in_flight > 0 {
            finished.push(self.next()?);
        }
        Ok(finished)
    }

    /// Waits for the oldest save in flight.
    fn next(&mut self) -> Result<Entry, CheckpointError> {
        self.in_flight -= 1;
        self.results.recv().map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> CheckpointError {
        CheckpointError::WriterStopped { dir: self.dir.clone() }
    }
}

/// Marks the calling thread as batch work: it gets its share of the processor, but waking it
/// does not preempt the thread that woke it. Without this, handing a checkpoint over on a
/// machine whose cores are all busy let the writer take the training thread's core for the
/// whole encoding (about 0.6 ms here).
fn batch_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain system call on the calling thread; failing leaves the policy as it was.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        // An error path still lets the write in flight finish: it is complete or not there at all.
        let _ = self.wait();
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
