//! Checkpoint writes off the training thread: the training thread copies the state (a big
//! table a chunk between steps, see `snapshot`) and hands it over; encoding, hashing, writing,
//! fsync and the manifest happen on one writer thread that lives as long as the run, scheduled
//! so that it never preempts training. One save may wait behind the one being written, so a
//! slow fsync does not stall training; a third waits for the first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use camino::Utf8PathBuf;

use est::checkpoint::format::Layout;
use est::checkpoint::{CheckpointError, Entry, Evaluation, HostTensor, Meta, Retention, Sink, Store};

use super::session::Session;
use super::snapshot::{Begun, Feed, Sizes, Snapshot};
use super::TrainError;

/// A checkpoint's bytes after its header: all of them, or a feed of them as they are copied.
enum Body {
    Whole(BTreeMap<String, HostTensor>),
    Streamed(Feed),
}

/// A checkpoint to write, and its evaluation during training, which the same manifest write records.
type Job = (Meta, Layout, Body, Option<Evaluation>);

pub struct Saver {
    dir: Utf8PathBuf,
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Result<Entry, CheckpointError>>,
    /// Saves handed over whose result has not been taken.
    in_flight: usize,
    writer: Option<JoinHandle<()>>,
    /// The saves still being copied between steps, oldest first: at most the two in flight.
    copying: VecDeque<Snapshot>,
    sizes: Sizes,
}

impl Saver {
    /// `protect` is the checkpoint this run restored from, which retention must keep.
    pub fn new(dir: Utf8PathBuf, retention: Retention, protect: Option<String>) -> Saver {
        let (jobs, incoming) = sync_channel::<Job>(1);
        let (done, results) = sync_channel(2);
        let store = Store::new(&dir);
        let writer = std::thread::spawn(move || {
            batch_priority();
            for (meta, layout, body, evaluation) in incoming {
                let mut write = |sink: &mut Sink| match &body {
                    Body::Whole(tensors) => layout.order.iter().try_for_each(|(name, _)| sink(&tensors[name].bytes)),
                    Body::Streamed(feed) => feed.drain(sink),
                };
                let saved =
                    store.save_with(&meta, &layout, &mut write, retention, protect.as_deref(), evaluation.as_ref());
                if done.send(saved).is_err() {
                    break;
                }
            }
        });
        let sizes = Sizes::current();
        Saver { dir, jobs: Some(jobs), results, in_flight: 0, writer: Some(writer), copying: VecDeque::new(), sizes }
    }

    /// Starts a checkpoint of `session` at its step; returns the entries of earlier saves that
    /// have finished. With `last_good` (the step of the last save), a state holding a NaN or an
    /// infinity is refused. Waits only when two saves are already in flight, for the first
    /// (finishing its copy).
    pub fn save(
        &mut self,
        session: &Session,
        meta: Meta,
        last_good: Option<u64>,
        evaluation: Option<Evaluation>,
    ) -> Result<Vec<Entry>, TrainError> {
        let begun =
            Snapshot::begin(&self.dir, session, &meta, last_good.unwrap_or(0), self.sizes, last_good.is_some())?;
        let mut finished = Vec::new();
        while self.in_flight > 0 {
            match self.results.try_recv() {
                Ok(result) => {
                    self.in_flight -= 1;
                    finished.push(result?);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(self.stopped().into()),
            }
        }
        if self.in_flight >= 2 {
            if let Some(mut oldest) = self.copying.pop_front() {
                if let Err(error) = oldest.finish() {
                    return Err(self.why(error));
                }
            }
            finished.push(self.next()?);
        }
        let (layout, body, snapshot) = match begun {
            Begun::Whole(layout, tensors) => (layout, Body::Whole(tensors), None),
            Begun::Streamed(layout, snapshot, feed) => (layout, Body::Streamed(feed), Some(snapshot)),
        };
        let job = (meta, layout, body, evaluation);
        self.jobs.as_ref().ok_or_else(|| self.stopped())?.send(job).map_err(|_| self.stopped())?;
        self.in_flight += 1;
        self.copying.extend(snapshot);
        Ok(finished)
    }

    /// The saves being copied between steps, which a step tells what it is about to write.
    pub fn copying(&mut self) -> &mut VecDeque<Snapshot> {
        &mut self.copying
    }

    /// Copies the next parts of the saves being copied, as far as the writer has room for
    /// them; whether there was anything to copy.
    pub fn copy_some(&mut self) -> Result<bool, TrainError> {
        let any = !self.copying.is_empty();
        // Only the oldest may wait for the writer: the writer takes the others after it.
        for (k, snapshot) in self.copying.iter_mut().enumerate() {
            if let Err(error) = snapshot.copy_some(k == 0) {
                self.copying.clear();
                return Err(self.why(error));
            }
        }
        self.copying.retain(|s| !s.copied());
        Ok(any)
    }

    /// Copies the rest of every save being copied.
    fn finish_copy(&mut self) -> Result<(), TrainError> {
        while let Some(mut snapshot) = self.copying.pop_front() {
            if let Err(error) = snapshot.finish() {
                self.copying.clear();
                return Err(self.why(error));
            }
        }
        Ok(())
    }

    /// `error`, or, when it is that the writer gave a save up, the writer's own reason (a full
    /// disk, a file-size limit), from the results of the saves in flight.
    fn why(&mut self, error: TrainError) -> TrainError {
        if !matches!(error, TrainError::Checkpoint(CheckpointError::WriterStopped { .. })) {
            return error;
        }
        while self.in_flight > 0 {
            match self.next() {
                Err(reason) => return reason.into(),
                Ok(_) => continue,
            }
        }
        error
    }

    /// Finishes copying, and waits for every save in flight; their entries, in order.
    pub fn wait(&mut self) -> Result<Vec<Entry>, TrainError> {
        self.finish_copy()?;
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
        // A save still being copied is given up (the writer removes its part); the write in
        // flight finishes: it is complete or not there at all.
        self.copying.clear();
        while self.in_flight > 0 {
            let _ = self.next();
        }
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}
