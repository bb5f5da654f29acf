//! The state a checkpoint holds, copied while training goes on. Small tensors are copied when
//! the save begins; a CPU group too big to copy in one pause is copied a chunk between steps,
//! and a step about to change elements not yet copied first keeps their old values, so the
//! file holds exactly the state of the step the save began at. Chunks go to the checkpoint
//! writer as they are copied, and come back to be reused: a save holds a few chunks and the
//! old values of what changed during it, never a second copy of the tables.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use est::checkpoint::format::Layout;
use est::checkpoint::{CheckpointError, HostTensor};
use safetensors::Dtype;
use tch::{Device, Tensor};

use super::direct::TouchedRows;
use super::optim::OptimizerState;
use super::session::Session;
use super::TrainError;
use crate::memory::{le_bytes, slice, to_f32s};

/// Bytes of one chunk.
const CHUNK: usize = 4 << 20;
/// Elements whose old values are kept together.
const GRANULE: usize = 64;
/// Old values kept, in bytes, past which a step waits for the writer to take chunks.
const KEPT_LIMIT: usize = 64 * CHUNK;
/// Chunks a save copies ahead of the writer.
const POOL: usize = 4;
/// Chunks copied between two steps at most.
const PER_STEP: usize = 2;
/// No old values kept: zero, so that a fresh index is zeroed memory the system hands over
/// untouched, not a fill of every page while training waits.
const NONE: u32 = 0;

/// What a step is about to write in one optimizer group's buffers (its flat buffer and each
/// optimizer slot), at the same elements of each.
pub enum Write<'a> {
    /// Every element.
    All,
    /// The touched rows of the members listed, and every other member whole.
    Rows(&'a [TouchedRows]),
}

/// The copying sizes: production's, or small ones that make tests copy small models in pieces.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Bytes copied between two steps.
    pub chunk: usize,
    /// A CPU group whose buffers hold more bytes is copied between steps.
    pub stream_over: usize,
}

impl Sizes {
    /// 4 MiB a step for groups over 16 MiB; `EST_SAVE_CHUNK` (bytes) sets both to one value.
    pub fn current() -> Sizes {
        let set = std::env::var("EST_SAVE_CHUNK").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n >= 4);
        match set {
            Some(n) => Sizes { chunk: n / 4 * 4, stream_over: n },
            None => Sizes { chunk: CHUNK, stream_over: 4 * CHUNK },
        }
    }
}

/// Where one tensor's bytes come from.
enum Source {
    /// Copied when the save began.
    Copied(Vec<u8>),
    /// Elements `start..start + len` of buffer `buffer` of group `group`, member `member`.
    Live { group: usize, buffer: usize, member: usize, start: usize, len: usize },
}

/// One group copied between steps.
struct Streamed {
    /// Its flat buffer, then one per optimizer slot.
    buffers: Vec<Tensor>,
    /// Each member's elements: `(start, len)`.
    members: Vec<(usize, usize)>,
    /// Per buffer and member: copied whole.
    done: Vec<Vec<bool>>,
    /// Per buffer and granule: one past where its old values are in `old` (in granules), or
    /// `NONE`.
    index: Vec<Vec<u32>>,
    /// Per buffer: old values, `GRANULE` a granule.
    old: Vec<Vec<f32>>,
}

/// A save being copied.
pub struct Snapshot {
    /// The model_dir, for the error when the writer gives the save up.
    dir: camino::Utf8PathBuf,
    step: u64,
    last_good: u64,
    pieces: Vec<(String, Source)>,
    /// The piece being copied, and the bytes of it already copied.
    next: usize,
    at: usize,
    groups: Vec<Option<Streamed>>,
    chunk: usize,
    chunks: Option<SyncSender<Vec<u8>>>,
    spent: Receiver<Vec<u8>>,
    /// Chunks made so far (each comes back through `spent`).
    made: usize,
    kept: usize,
}

/// The writer's end of a snapshot: the bytes in layout order, and where spent chunks go back.
pub struct Feed {
    pub chunks: Receiver<Vec<u8>>,
    pub spent: SyncSender<Vec<u8>>,
}

impl Feed {
    /// Hands every byte to `sink` as it arrives; ends when the snapshot is copied or dropped.
    pub fn drain(&self, sink: &mut est::checkpoint::Sink) -> std::io::Result<()> {
        for chunk in &self.chunks {
            sink(&chunk)?;
            // The snapshot may be gone, and then nothing reuses it.
            let _ = self.spent.try_send(chunk);
        }
        Ok(())
    }
}

impl Snapshot {
    /// Begins a save of `session`'s state into model_dir `dir`: copies what is small now and,
    /// with `check`, that every value copied is finite (`last_good` is the step of the last
    /// save, for the error; what is copied later is checked as it is copied). The file's layout
    /// and every tensor when nothing is left to copy; else the layout, the snapshot and the
    /// writer's feed.
    pub fn begin(
        dir: &camino::Utf8Path,
        session: &Session,
        meta: &est::checkpoint::Meta,
        last_good: u64,
        sizes: Sizes,
        check: bool,
    ) -> Result<Begun, TrainError> {
        let step = session.global_step;
        let model = &session.model;
        let mut copied: BTreeMap<String, HostTensor> = BTreeMap::new();
        let mut live: Vec<(String, Dtype, Vec<usize>, Source)> = Vec::new();
        let mut groups = Vec::new();
        for (g, (group, opt)) in model.groups.iter().zip(&session.optimizers).enumerate() {
            let mut buffers = vec![group.flat.shallow_clone()];
            buffers.extend(opt.slots[0].iter().map(Tensor::shallow_clone));
            let bytes: usize = buffers.iter().map(|b| b.numel() * 4).sum();
            let streams = group.flat.device() == Device::Cpu && bytes > sizes.stream_over;
            let names = std::iter::once(None).chain(opt.config.kind.slots().into_iter().map(Some));
            for (b, (buffer, slot)) in buffers.iter().zip(names).enumerate() {
                let name = |param: &str| match slot {
                    None => param.to_string(),
                    Some(slot) => OptimizerState::slot_name(opt.config.scope, param, slot),
                };
                if !streams {
                    super::session::split(&super::session::to_host(buffer)?, group, model, name, &mut copied);
                    continue;
                }
                for (m, &(pi, offset, len)) in group.members.iter().enumerate() {
                    let param = &model.params[pi];
                    let shape = param.tensor.size().iter().map(|&d| d as usize).collect();
                    let source =
                        Source::Live { group: g, buffer: b, member: m, start: offset as usize, len: len as usize };
                    live.push((name(&param.name), Dtype::F32, shape, source));
                }
            }
            groups.push(streams.then(|| Streamed::new(group, buffers)));
        }
        session.non_group_tensors(&mut copied)?;
        if check {
            super::session::check_finite(&copied, step, last_good)?;
        }
        let shapes = copied
            .iter()
            .map(|(k, v)| (k.as_str(), v.dtype, v.shape.as_slice()))
            .chain(live.iter().map(|(k, d, s, _)| (k.as_str(), *d, s.as_slice())));
        let layout = est::checkpoint::format::layout(meta, shapes).map_err(|source| CheckpointError::Unreadable {
            path: dir.join(est::checkpoint::file_name(step)),
            source,
        })?;
        if live.is_empty() {
            return Ok(Begun::Whole(layout, copied));
        }
        let mut sources: BTreeMap<String, Source> =
            copied.into_iter().map(|(k, v)| (k, Source::Copied(v.bytes))).collect();
        sources.extend(live.into_iter().map(|(k, _, _, s)| (k, s)));
        let pieces = layout.order.iter().filter_map(|(name, _)| sources.remove_entry(name)).collect();
        let (chunks, incoming) = sync_channel(2 * POOL);
        let (spent_tx, spent) = sync_channel(2 * POOL);
        let snapshot = Snapshot {
            dir: dir.to_owned(),
            step,
            last_good,
            pieces,
            next: 0,
            at: 0,
            groups,
            chunk: sizes.chunk,
            chunks: Some(chunks),
            spent,
            made: 0,
            kept: 0,
        };
        Ok(Begun::Streamed(layout, snapshot, Feed { chunks: incoming, spent: spent_tx }))
    }

    /// Keeps the old values of what a step is about to write in group `group`, where they are
    /// not copied yet.
    pub fn before_write(&mut self, group: usize, write: &Write) {
        let Some(Some(s)) = self.groups.get_mut(group) else { return };
        for m in 0..s.members.len() {
            let (start, len) = s.members[m];
            for b in 0..s.buffers.len() {
                if s.done[b][m] {
                    continue;
                }
                let rows = match write {
                    Write::Rows(touched) => touched.iter().find(|t| t.offset == start),
                    Write::All => None,
                };
                match rows {
                    Some(t) => {
                        for &r in &t.rows {
                            self.kept += s.keep(b, start + r as usize * t.width, t.width);
                        }
                    }
                    None => self.kept += s.keep(b, start, len),
                }
            }
        }
    }

    /// Copies as many chunks as the writer has made room for; with `may_wait` (the writer is on
    /// this save), at least one when the old values kept have grown past their limit.
    pub fn copy_some(&mut self, may_wait: bool) -> Result<(), TrainError> {
        let mut must = may_wait && self.kept > KEPT_LIMIT;
        for _ in 0..PER_STEP {
            let Some(buffer) = self.buffer(must) else { break };
            self.fill(buffer)?;
            if self.chunks.is_none() {
                break;
            }
            must = false;
        }
        Ok(())
    }

    /// Whether every byte is copied.
    pub fn copied(&self) -> bool {
        self.chunks.is_none()
    }

    /// Copies everything that is left, waiting for the writer as it must.
    pub fn finish(&mut self) -> Result<(), TrainError> {
        while self.chunks.is_some() {
            let buffer = self.buffer(true).ok_or_else(|| self.gone())?;
            self.fill(buffer)?;
        }
        Ok(())
    }

    /// The error when the writer no longer takes this save's bytes; the saver puts the
    /// writer's own reason in its place.
    fn gone(&self) -> TrainError {
        CheckpointError::WriterStopped { dir: self.dir.clone() }.into()
    }

    /// A chunk to fill: one back from the writer, a new one while fewer than `POOL` are out,
    /// or (when `wait`) the next the writer gives back.
    fn buffer(&mut self, wait: bool) -> Option<Vec<u8>> {
        if let Ok(b) = self.spent.try_recv() {
            return Some(b);
        }
        if self.made < POOL {
            self.made += 1;
            return Some(Vec::with_capacity(self.chunk));
        }
        if wait {
            return self.spent.recv().ok();
        }
        None
    }

    /// Fills `buffer` with the next bytes in layout order and sends it; a copied tensor goes
    /// over whole, as its own chunk.
    fn fill(&mut self, mut buffer: Vec<u8>) -> Result<(), TrainError> {
        buffer.clear();
        while buffer.len() < self.chunk && self.next < self.pieces.len() {
            let (name, source) = &mut self.pieces[self.next];
            match source {
                Source::Copied(bytes) => {
                    if !buffer.is_empty() {
                        break;
                    }
                    buffer = std::mem::take(bytes);
                    self.next += 1;
                    break;
                }
                &mut Source::Live { group, buffer: b, member, start, len } => {
                    let Some(s) = self.groups.get_mut(group).and_then(Option::as_mut) else {
                        // Not a streamed group: a bug, which the writer reports as a short file.
                        self.chunks = None;
                        return Err(self.gone());
                    };
                    let from = self.at / 4;
                    let n = ((self.chunk - buffer.len()) / 4).min(len - from);
                    let at = buffer.len();
                    s.copy(b, start + from, n, &mut buffer);
                    if let Some(value) = first_not_finite(&buffer[at..]) {
                        let (step, last_good, tensor) = (self.step, self.last_good, name.clone());
                        self.chunks = None;
                        return Err(TrainError::NonFiniteState { step, tensor, value, last_good });
                    }
                    self.at += n * 4;
                    if from + n == len {
                        s.done[b][member] = true;
                        self.next += 1;
                        self.at = 0;
                    }
                }
            }
        }
        let sent = self.chunks.as_ref().is_some_and(|c| c.send(buffer).is_ok());
        if !sent {
            return Err(self.gone());
        }
        if self.next == self.pieces.len() {
            self.chunks = None;
            self.groups.clear();
        }
        Ok(())
    }
}

/// The first of the little-endian floats in `bytes` that is not finite.
fn first_not_finite(bytes: &[u8]) -> Option<f32> {
    match to_f32s(bytes) {
        Some(values) => super::session::first_not_finite(&mut values.iter().copied()),
        None => super::session::first_not_finite(
            &mut bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
    }
}

/// A save begun: everything already copied, or a snapshot still to copy and the writer's feed.
pub enum Begun {
    Whole(Layout, BTreeMap<String, HostTensor>),
    Streamed(Layout, Snapshot, Feed),
}

impl Streamed {
    fn new(group: &crate::lower::Group, buffers: Vec<Tensor>) -> Streamed {
        let granules = (group.flat.numel()).div_ceil(GRANULE);
        let k = buffers.len();
        let members: Vec<(usize, usize)> = group.members.iter().map(|&(_, o, l)| (o as usize, l as usize)).collect();
        Streamed {
            done: vec![vec![false; members.len()]; k],
            // Each made afresh: a clone would copy, and touch, every page.
            index: (0..k).map(|_| vec![NONE; granules]).collect(),
            old: vec![Vec::new(); k],
            members,
            buffers,
        }
    }

    /// Keeps the old values of the granules of buffer `b` that elements `start..start + n`
    /// fall in, unless they are kept already; the bytes newly kept.
    fn keep(&mut self, b: usize, start: usize, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // SAFETY: the training thread is the only writer and it is here, between writes.
        let Some(values) = (unsafe { slice::<f32>(&self.buffers[b]) }) else { return 0 };
        let mut kept = 0;
        for g in start / GRANULE..=(start + n - 1) / GRANULE {
            if self.index[b][g] != NONE {
                continue;
            }
            let old = &mut self.old[b];
            self.index[b][g] = (old.len() / GRANULE) as u32 + 1;
            let from = g * GRANULE;
            let to = (from + GRANULE).min(values.len());
            old.extend_from_slice(&values[from..to]);
            old.resize(old.len().next_multiple_of(GRANULE), 0.0);
            kept += GRANULE * 4;
        }
        kept
    }

    /// Appends elements `start..start + n` of buffer `b` as they were when the save began.
    fn copy(&self, b: usize, start: usize, n: usize, out: &mut Vec<u8>) {
        // SAFETY: as in `keep`.
        let Some(values) = (unsafe { slice::<f32>(&self.buffers[b]) }) else { return };
        let at = out.len();
        out.extend_from_slice(le_bytes(&values[start..start + n]));
        if n == 0 {
            return;
        }
        for g in start / GRANULE..=(start + n - 1) / GRANULE {
            let p = self.index[b][g];
            if p == NONE {
                continue;
            }
            let (lo, hi) = ((g * GRANULE).max(start), ((g + 1) * GRANULE).min(start + n));
            let old = &self.old[b][(p as usize - 1) * GRANULE + (lo - g * GRANULE)..][..hi - lo];
            let dst = &mut out[at + (lo - start) * 4..at + (hi - start) * 4];
            for (d, v) in dst.chunks_exact_mut(4).zip(old) {
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}
