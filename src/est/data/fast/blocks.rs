//! The fast reader's blocks: the cores take 1 MiB blocks of the file in turn; each counts the
//! lines that start in its block, which tells the next block where its rows begin (its
//! ticket), then reads them straight into its rows of the table's columns, and sums each group
//! of rows for the statistics as soon as the group is complete. The columns are shared by all
//! the threads, each writing rows no other touches: `read` is the only way in, and the one
//! place that relies on the tickets for that.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use super::alloc::zeros;
use super::rows::{Piece, Row, Shape};
use crate::data::stats::{dense_partial, Acc, STATS_ROWS};

const BLOCK: usize = 1 << 20;
/// Bytes read at a time past a block to finish its last line.
const TAIL: usize = 4096;
/// Bytes after the last line that the vectorised scans may load: 64 from a line's start.
const PAD: usize = 64;
/// A row count not yet known.
const UNKNOWN: usize = usize::MAX;

/// The table's columns as the blocks filled them.
pub struct Filled {
    /// Rows read.
    pub rows: usize,
    /// The numeric block, `[rows, shape.width]`.
    pub block: Vec<f32>,
    /// The categorical ids, `[rows, shape.categorical]`.
    pub ids: Vec<i64>,
    /// Class labels, `[rows]`, when read.
    pub classes: Vec<i64>,
    /// Regression labels, `[rows]`, when read.
    pub values: Vec<f32>,
    /// Per numeric column, the rows that held a missing marker, in order.
    pub missing: Vec<Vec<usize>>,
    /// Per group of `STATS_ROWS` rows, its statistics where a core summed it as it completed
    /// (right only when nothing was missing).
    pub partials: Vec<Option<Vec<Acc>>>,
}

/// Reads the body of `file` (from `body_start` to `size`) with `row`, on up to eight cores;
/// `classes` or `values` says which label column a row holds. `None` when any block cannot be
/// read the fast way.
pub fn read(file: Body, body_start: usize, size: usize, row: Row, classes: bool, values: bool) -> Option<Filled> {
    let shape = row.shape;
    let body = size - body_start;
    let blocks = body.div_ceil(BLOCK);
    // No line is shorter than its delimiters and newline, so this many rows always fit; pages of
    // the columns that no row reaches are never touched.
    let bound = body / row.names() + 1;
    let mut block = zeros::<f32>(bound.checked_mul(shape.width)?)?;
    let mut ids = zeros::<i64>(bound.checked_mul(shape.categorical)?)?;
    let mut class_column = zeros::<i64>(if classes { bound } else { 0 })?;
    let mut value_column = zeros::<f32>(if values { bound } else { 0 })?;
    let columns = Columns {
        block: (block.as_mut_ptr(), shape.width),
        ids: (ids.as_mut_ptr(), shape.categorical),
        classes: (class_column.as_mut_ptr(), usize::from(classes)),
        values: (value_column.as_mut_ptr(), usize::from(values)),
    };
    let groups = bound.div_ceil(STATS_ROWS);
    let shared = Shared {
        file,
        body_start,
        size,
        blocks,
        bound,
        next: AtomicUsize::new(0),
        starts: (0..=blocks).map(|k| AtomicUsize::new(if k == 0 { 0 } else { UNKNOWN })).collect(),
        failed: AtomicBool::new(false),
        filled: (0..groups).map(|_| AtomicUsize::new(0)).collect(),
        partials: (0..groups).map(|_| OnceLock::new()).collect(),
        columns,
        row,
        turn: Mutex::new(()),
        moved: Condvar::new(),
    };
    let threads = crate::data::cores().clamp(1, 8).min(blocks).max(1);
    // The columns outlive the threads, which end here; only then are the vectors used again.
    let found: Vec<Vec<Vec<usize>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(|| shared.work())).collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect::<Option<Vec<_>>>()
    })?;
    let rows = shared.starts[blocks].load(Ordering::Acquire);
    if rows == 0 || rows > bound {
        return None;
    }
    // Giving back the columns' untouched ends moves no data.
    for column in [&mut block, &mut value_column] {
        column.truncate(column.len() / bound * rows);
        column.shrink_to_fit();
    }
    for column in [&mut ids, &mut class_column] {
        column.truncate(column.len() / bound * rows);
        column.shrink_to_fit();
    }
    // Each core found its missing rows in order; the cores' lists interleave.
    let mut missing = vec![Vec::new(); shape.width];
    for per_core in found {
        for (all, some) in missing.iter_mut().zip(per_core) {
            all.extend(some);
        }
    }
    for rows in &mut missing {
        rows.sort_unstable();
    }
    let partials = shared.partials.into_iter().take(rows.div_ceil(STATS_ROWS)).map(OnceLock::into_inner).collect();
    Some(Filled { rows, block, ids, classes: class_column, values: value_column, missing, partials })
}

/// The table's columns, each a pointer and its values per row (0 for one not read), which the
/// blocks fill at disjoint rows from several threads.
struct Columns {
    block: (*mut f32, usize),
    ids: (*mut i64, usize),
    classes: (*mut i64, usize),
    values: (*mut f32, usize),
}

// SAFETY: threads write only the rows the tickets in `Shared::starts` gave them.
unsafe impl Sync for Columns {}

impl Columns {
    /// Rows `first..first + rows` of every column, for one block.
    ///
    /// # Safety
    /// The rows lie within the columns, and no other live `Piece` covers any of them.
    unsafe fn rows<'o>(&self, first: usize, rows: usize, shape: Shape, missing: &'o mut [Vec<usize>]) -> Piece<'o> {
        /// Rows `first..first + rows` of one column.
        ///
        /// # Safety
        /// As for `Columns::rows`.
        unsafe fn part<'o, T>((data, per_row): (*mut T, usize), first: usize, rows: usize) -> &'o mut [T] {
            // SAFETY: the rows lie within the column's allocation and no other live slice covers
            // them (the caller's promise); a column not read has `per_row` 0: an empty slice at
            // its dangling, aligned pointer.
            unsafe { std::slice::from_raw_parts_mut(data.add(first * per_row), rows * per_row) }
        }
        // SAFETY: the caller's promise, for each column.
        unsafe {
            Piece {
                rows: 0,
                first,
                block: part(self.block, first, rows),
                ids: part(self.ids, first, rows),
                classes: part(self.classes, first, rows),
                values: part(self.values, first, rows),
                missing,
                shape,
            }
        }
    }
}

/// What the threads reading one file share.
struct Shared<'a, 'p> {
    file: Body<'a>,
    body_start: usize,
    size: usize,
    blocks: usize,
    /// Rows the columns have room for.
    bound: usize,
    /// The next block no thread has taken.
    next: AtomicUsize,
    /// Per block, the table row of its first row, once the blocks before it have counted theirs.
    starts: Vec<AtomicUsize>,
    failed: AtomicBool,
    /// Per group of `STATS_ROWS` table rows, how many have been read, and once all have, their
    /// statistics (right for a file with no missing values), summed while they are in cache.
    filled: Vec<AtomicUsize>,
    partials: Vec<OnceLock<Vec<Acc>>>,
    columns: Columns,
    row: Row<'a, 'p>,
    /// Held while a thread checks for its ticket; `moved` tells when a ticket or a failure
    /// may have come.
    turn: Mutex<()>,
    moved: Condvar,
}

impl Shared<'_, '_> {
    /// Takes blocks until none is left; the rows that held missing markers, per numeric column.
    /// `None`, and every other thread stops, when a block cannot be read the fast way.
    fn work(&self) -> Option<Vec<Vec<usize>>> {
        let mut buffer = Vec::new();
        let mut missing = vec![Vec::new(); self.row.shape.width];
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            if k >= self.blocks || self.failed.load(Ordering::Relaxed) {
                return (!self.failed.load(Ordering::Relaxed)).then_some(missing);
            }
            if self.block(k, &mut buffer, &mut missing).is_none() {
                self.failed.store(true, Ordering::Relaxed);
                self.wake();
                return None;
            }
        }
    }

    /// Reads the lines that start in block `k` into their rows. The block is read with the byte
    /// before it, which tells whether a line starts at its first byte; its last line is read on
    /// to its end past the block.
    fn block(&self, k: usize, buffer: &mut Vec<u8>, missing: &mut [Vec<usize>]) -> Option<()> {
        let begin = self.body_start + k * BLOCK;
        let end = (begin + BLOCK).min(self.size);
        let from = if k == 0 { begin } else { begin - 1 };
        let mut len = end - from;
        fill(self.file, buffer, 0, from, len)?;
        // Lines start after each newline before the block's last byte, and at the body's start.
        let head = &buffer[..len - 1];
        let (newlines, quoted) = match self.row.avx512 {
            Some(avx) => avx.newlines(head),
            None => (memchr::memchr_iter(b'\n', head).count(), memchr::memchr(b'"', head).is_some()),
        };
        let lines = newlines + usize::from(k == 0);
        let first_line = if k == 0 { 0 } else { memchr::memchr(b'\n', head).map_or(0, |i| i + 1) };
        let first = self.ticket(k, lines)?;
        if lines == 0 {
            return Some(());
        }
        let whole = len;
        if first + lines > self.bound {
            // Lines shorter than a row can be: the careful reader says which.
            return None;
        }
        if buffer[len - 1] != b'\n' {
            let last_line = memchr::memrchr(b'\n', &buffer[..len]).map_or(first_line, |i| i + 1);
            let mut at = end;
            loop {
                let n = TAIL.min(self.size - at);
                if n == 0 {
                    // The file's last line has no newline: as if it had.
                    fill_byte(buffer, len, b'\n');
                    len += 1;
                    break;
                }
                if len - last_line > BLOCK {
                    // A line longer than a block is left to the careful reader.
                    return None;
                }
                fill(self.file, buffer, len, at, n)?;
                at += n;
                if let Some(i) = memchr::memchr(b'\n', &buffer[len..len + n]) {
                    len += i + 1;
                    break;
                }
                len += n;
            }
        }
        // Quotes, even before the first line, are left to the careful reader.
        if quoted || memchr::memchr(b'"', &buffer[whole - 1..len]).is_some() {
            return None;
        }
        // SAFETY: the blocks' tickets give disjoint rows, and these lie below the bound.
        let mut piece = unsafe { self.columns.rows(first, lines, self.row.shape, missing) };
        let lines_at = &buffer[..len + PAD];
        let stop = match (self.row.avx512, self.row.sse41) {
            (Some(avx), _) => avx.rows(&self.row, lines_at, first_line, lines, &mut piece)?,
            (None, Some(sse)) => sse.rows(&self.row, lines_at, first_line, lines, &mut piece)?,
            (None, None) => self.row.rows(lines_at, first_line, lines, &mut piece)?,
        };
        if stop != len {
            return None;
        }
        // The block's rows are read: `piece`, which borrowed them mutably, is not used again.
        self.sum_groups(first, lines);
        Some(())
    }

    /// Counts rows `first..first + lines` as read, and sums each group of rows that this makes
    /// complete.
    fn sum_groups(&self, first: usize, lines: usize) {
        let width = self.row.shape.width;
        let end = first + lines;
        if width == 0 || lines == 0 {
            return;
        }
        for g in first / STATS_ROWS..=(end - 1) / STATS_ROWS {
            let here = end.min((g + 1) * STATS_ROWS) - first.max(g * STATS_ROWS);
            if self.filled[g].fetch_add(here, Ordering::AcqRel) + here == STATS_ROWS {
                // SAFETY: every row of the group has been written (the count says so, and its
                // acquire orders those writes before this read) and none is written again.
                let values = unsafe {
                    std::slice::from_raw_parts(self.columns.block.0.add(g * STATS_ROWS * width), STATS_ROWS * width)
                };
                let _ = self.partials[g].set(dense_partial(values, width));
            }
        }
    }

    /// The table row where block `k`'s `lines` rows start, once the blocks before it have
    /// counted theirs (sleeping until then); passes on where the next block's rows start.
    fn ticket(&self, k: usize, lines: usize) -> Option<usize> {
        let mut first = self.starts[k].load(Ordering::Acquire);
        if first == UNKNOWN {
            let mut guard = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                first = self.starts[k].load(Ordering::Acquire);
                if first != UNKNOWN {
                    break;
                }
                if self.failed.load(Ordering::Relaxed) {
                    return None;
                }
                guard = self.moved.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
        }
        self.starts[k + 1].store(first + lines, Ordering::Release);
        self.wake();
        Some(first)
    }

    /// Wakes the threads waiting for a ticket. Taking the lock first means none of them is
    /// between its check and its wait, so none misses this.
    fn wake(&self) {
        drop(self.turn.lock());
        self.moved.notify_all();
    }
}

/// What the blocks are read from: a file, or text already in memory (a decompressed file).
#[derive(Clone, Copy)]
pub enum Body<'a> {
    /// Read with `pread`, so the threads share one descriptor.
    File(&'a File),
    /// The whole text.
    Bytes(&'a [u8]),
}

impl Body<'_> {
    /// Fills `out` from byte `at`.
    pub fn read_exact_at(&self, out: &mut [u8], at: u64) -> Option<()> {
        match self {
            Body::File(file) => file.read_exact_at(out, at).ok(),
            Body::Bytes(bytes) => {
                let at = usize::try_from(at).ok()?;
                out.copy_from_slice(bytes.get(at..at.checked_add(out.len())?)?);
                Some(())
            }
        }
    }
}

/// Reads `n` bytes of `file` from `at` into `buffer[offset..]`, growing the buffer as needed
/// with `PAD` bytes to spare for the vectorised scan's loads past the last line.
fn fill(file: Body, buffer: &mut Vec<u8>, offset: usize, at: usize, n: usize) -> Option<()> {
    if buffer.len() < offset + n + PAD {
        buffer.resize(offset + n + PAD, 0);
    }
    file.read_exact_at(&mut buffer[offset..offset + n], at as u64)
}

/// Sets `buffer[offset]`, growing the buffer as `fill` does.
fn fill_byte(buffer: &mut Vec<u8>, offset: usize, byte: u8) {
    if buffer.len() < offset + 1 + PAD {
        buffer.resize(offset + 1 + PAD, 0);
    }
    buffer[offset] = byte;
}
