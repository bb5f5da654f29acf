//! The fast way through a clean CSV file: no quotes, one value per field, every row good. The
//! cores take 1 MiB blocks of the file in turn; each counts the lines that start in its block,
//! which tells the next block where its rows begin, then reads them straight into the table's
//! columns, so no value is copied after it is parsed, and sums each group of rows for the
//! statistics as soon as the group is complete. Within a line, the field separators are found
//! 64 bytes at a time, and plain decimals are read eight at a time with AVX-512 (one at a time,
//! 16 bytes at once, without it). Anything unusual (a quote, an empty line, a field that does
//! not parse) returns `None`, and the careful reader, which names file, line and column, reads
//! the file instead. Both produce the same table, bit for bit.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use camino::Utf8Path;

use super::{
    dense_partial, finish_stats, merge_stats, Acc, IdColumn, Labels, NumericBlock, NumericColumn, Purpose, Stats,
    Table, STATS_ROWS,
};
use crate::pipeline::{CategoricalIds, FeatureKind};
use crate::plan::{HeadKind, Plan};

const BLOCK: usize = 1 << 20;
/// Bytes read at a time past a block to finish its last line.
const TAIL: usize = 4096;
/// Bytes after the last line that the vectorised scans may load: 64 from a line's start.
const PAD: usize = 64;

/// How one needed field is read.
enum Field<'p> {
    Numeric { at: usize, default: Option<f32> },
    Categorical { at: usize, ids: &'p CategoricalIds, vocabulary: HashMap<&'p [u8], i64> },
    Class { vocabulary: Option<HashMap<&'p [u8], i64>>, n_classes: i64 },
    Value,
}

/// Where the rows of one block go: its slices of the shared columns.
struct Piece<'o> {
    /// Rows read so far.
    rows: usize,
    /// The table row of the block's first row.
    first: usize,
    block: &'o mut [f32],
    ids: &'o mut [i64],
    classes: &'o mut [i64],
    values: &'o mut [f32],
    /// Per numeric column, the table rows that held a missing marker.
    missing: &'o mut [Vec<usize>],
    shape: Shape,
}

/// How many values of each kind a row holds.
#[derive(Clone, Copy)]
struct Shape {
    width: usize,
    categorical: usize,
}

pub fn load(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Option<Table> {
    let data = &plan.data;
    let file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len() as usize;
    let mut head = vec![0u8; size.min(1 << 16)];
    file.read_exact_at(&mut head, 0).ok()?;
    let bom = if head.starts_with(b"\xef\xbb\xbf") { 3 } else { 0 };
    let delimiter = data.delimiter as u8;
    if !data.delimiter.is_ascii() || matches!(delimiter, b'\n' | b'\r' | b'"') {
        return None;
    }
    let (names, body_start) = if data.header {
        let end = memchr(b'\n', &head[bom..])? + bom;
        let line = trim_cr(&head[bom..end]);
        if line.contains(&b'"') {
            return None;
        }
        let header: Vec<String> =
            line.split(|&b| b == delimiter).map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
        // A repeated name is an error the careful reader reports.
        if crate::pipeline::repeated(&header).is_some() {
            return None;
        }
        (data.columns.clone().unwrap_or(header), end + 1)
    } else {
        (data.columns.clone()?, bom)
    };
    let at = |name: &str| names.iter().position(|n| n == name);

    // The fields to read, and where each numeric one goes in the block.
    let order = plan.numeric_order();
    let mut columns = Vec::new();
    let mut fields: Vec<(usize, Field)> = Vec::new();
    let mut offset = 0;
    for name in &order {
        let f = plan.feature(name)?;
        let FeatureKind::Numeric { column, default, shape, .. } = &f.feature.kind else { return None };
        if *shape != 1 {
            return None;
        }
        fields.push((at(column)?, Field::Numeric { at: offset, default: default.map(|d| d as f32) }));
        columns.push(NumericColumn { name: name.clone(), offset, shape: 1, stats: Stats::default() });
        offset += 1;
    }
    let width = offset;
    let mut categorical: Vec<&str> = Vec::new();
    for f in &plan.features {
        if let FeatureKind::Categorical { column, ids, separator } = &f.feature.kind {
            if separator.is_some() {
                return None;
            }
            let vocabulary = match ids {
                CategoricalIds::Vocabulary { vocabulary, .. } => {
                    vocabulary.iter().enumerate().map(|(i, v)| (v.as_bytes(), i as i64)).collect()
                }
                _ => HashMap::new(),
            };
            fields.push((at(column)?, Field::Categorical { at: categorical.len(), ids, vocabulary }));
            categorical.push(&f.feature.name);
        }
    }
    if purpose == Purpose::Labelled {
        let field = match plan.model.head.kind {
            HeadKind::Regression => Field::Value,
            _ => Field::Class {
                vocabulary: data
                    .label_vocabulary
                    .as_ref()
                    .map(|v| v.iter().enumerate().map(|(i, s)| (s.as_bytes(), i as i64)).collect()),
                n_classes: plan.model.head.n_classes.unwrap_or(0) as i64,
            },
        };
        fields.push((at(&data.label)?, field));
    }
    fields.sort_by_key(|(i, _)| *i);
    let missing: Vec<&[u8]> = data.missing.iter().map(|m| m.as_bytes()).collect();

    // Blocks of the body go to the cores in order; each block's rows land in the shared columns
    // at the row where the blocks before it end, known as soon as each has counted its lines.
    let labelled = purpose == Purpose::Labelled;
    let shape = Shape { width, categorical: categorical.len() };
    let body = size - body_start;
    let blocks = body.div_ceil(BLOCK);
    // No line is shorter than its delimiters and newline, so this many rows always fit; pages of
    // the columns that no row reaches are never touched.
    let bound = body / names.len() + 1;
    let mut block = zeros::<f32>(bound.checked_mul(width)?)?;
    let mut ids = zeros::<i64>(bound.checked_mul(shape.categorical)?)?;
    let regression = labelled && plan.model.head.kind == HeadKind::Regression;
    let mut classes = zeros::<i64>(if labelled && !regression { bound } else { 0 })?;
    let mut values = zeros::<f32>(if regression { bound } else { 0 })?;
    let columns_out = Columns {
        block: (block.as_mut_ptr(), width),
        ids: (ids.as_mut_ptr(), shape.categorical),
        classes: (classes.as_mut_ptr(), usize::from(labelled && !regression)),
        values: (values.as_mut_ptr(), usize::from(regression)),
    };
    let groups = bound.div_ceil(STATS_ROWS);
    let mut shared = Shared {
        file: &file,
        body_start,
        size,
        blocks,
        bound,
        next: AtomicUsize::new(0),
        starts: (0..=blocks).map(|k| AtomicUsize::new(if k == 0 { 0 } else { UNKNOWN })).collect(),
        failed: AtomicBool::new(false),
        filled: (0..groups).map(|_| AtomicUsize::new(0)).collect(),
        partials: (0..groups).map(|_| OnceLock::new()).collect(),
        columns: columns_out,
        row: Row::new(names.len(), delimiter, &fields, &missing, shape),
    };
    let threads = super::cores().clamp(1, 8).min(blocks).max(1);
    let found: Vec<Vec<Vec<usize>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(|| shared.work())).collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect::<Option<Vec<_>>>()
    })?;
    let rows = shared.starts[blocks].load(Ordering::Acquire);
    if rows == 0 || rows > bound {
        return None;
    }
    // Giving back the columns' untouched ends moves no data.
    for column in [&mut block, &mut values] {
        column.truncate(column.len() / bound * rows);
        column.shrink_to_fit();
    }
    for column in [&mut ids, &mut classes] {
        column.truncate(column.len() / bound * rows);
        column.shrink_to_fit();
    }
    // Each core found its missing rows in order; the cores' lists interleave.
    let mut missing_rows = vec![Vec::new(); width];
    for per_core in found {
        for (all, some) in missing_rows.iter_mut().zip(per_core) {
            all.extend(some);
        }
    }
    for rows in &mut missing_rows {
        rows.sort_unstable();
    }
    let mut numeric = NumericBlock { values: block, width, columns };
    if width > 0 && missing_rows.iter().all(Vec::is_empty) {
        // The groups of rows the cores did not sum as they went: the last, partly filled one.
        let partials: Vec<Vec<Acc>> = std::mem::take(&mut shared.partials)
            .into_iter()
            .take(rows.div_ceil(STATS_ROWS))
            .enumerate()
            .map(|(g, partial)| {
                partial.into_inner().unwrap_or_else(|| {
                    let rows = g * STATS_ROWS..((g + 1) * STATS_ROWS).min(rows);
                    dense_partial(&numeric.values[rows.start * width..rows.end * width], width)
                })
            })
            .collect();
        merge_stats(&mut numeric, &partials);
    } else {
        finish_stats(&mut numeric, &missing_rows);
    }
    let mut table = Table { rows, numeric, ..Table::default() };
    for (k, name) in categorical.iter().enumerate() {
        let column: Vec<i64> = (0..rows).map(|r| ids[r * categorical.len() + k]).collect();
        table.ids.insert(name.to_string(), IdColumn { ids: column, width: 1 });
    }
    super::derive(plan, &mut table);
    table.labels = match (purpose, plan.model.head.kind) {
        (Purpose::Unlabelled, _) => None,
        (_, HeadKind::Regression) => Some(Labels::Values(values)),
        _ => Some(Labels::Classes(classes)),
    };
    Some(table)
}

fn memchr(byte: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(byte, haystack)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(mut field: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = field {
        if first.is_ascii_whitespace() {
            field = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = field {
        if last.is_ascii_whitespace() {
            field = rest;
        } else {
            break;
        }
    }
    field
}

/// A row count not yet known.
const UNKNOWN: usize = usize::MAX;

/// `n` zeros in memory the system hands out zeroed, so pages no row reaches are never touched;
/// `None` when that much address space cannot be had.
fn zeros<T: Zero>(n: usize) -> Option<Vec<T>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).ok()?;
    // SAFETY: `layout` has a non-zero size.
    let data = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if data.is_null() {
        return None;
    }
    huge_pages(data.cast(), layout.size());
    // SAFETY: allocated by the global allocator with `T`'s layout for `n` elements, all zero
    // bytes, which `Zero` promises is a value of `T`.
    Some(unsafe { Vec::from_raw_parts(data, n, n) })
}

/// Asks for 2 MiB pages for the whole 2 MiB stretches of a fresh allocation, when the system
/// has free ones to spare: a column is then faulted in a few times instead of thousands. Where
/// free 2 MiB blocks are short, asking could stall the first touch while the kernel compacts
/// memory, so it is left alone.
fn huge_pages(data: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (data as usize).next_multiple_of(HUGE);
        let end = (data as usize + size) / HUGE * HUGE;
        if end <= start || free_huge_blocks().is_none_or(|free| free < 2 * (end - start) / HUGE) {
            return;
        }
        // SAFETY: advice on whole pages of an allocation this process owns; it changes how
        // they are backed, not what they hold.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (data, size);
}

/// Free blocks of physical memory of 2 MiB and more, counted in 2 MiB, from /proc/buddyinfo
/// (one line per zone: the free blocks of 4 KiB × 2^order, order 0 first).
#[cfg(target_os = "linux")]
fn free_huge_blocks() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/buddyinfo").ok()?;
    let mut free = 0usize;
    for line in text.lines() {
        let counts = line.split_once("zone")?.1.split_whitespace().skip(1);
        for (order, count) in counts.enumerate().skip(9) {
            free = free.saturating_add(count.parse::<usize>().ok()? << (order - 9));
        }
    }
    Some(free)
}

/// Types for which all-zero bytes are a value.
trait Zero {}
impl Zero for f32 {}
impl Zero for i64 {}

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
        // SAFETY: the caller's promise; a column not read has an empty part at its (dangling,
        // aligned) pointer.
        unsafe fn part<'o, T>((data, per_row): (*mut T, usize), first: usize, rows: usize) -> &'o mut [T] {
            unsafe { std::slice::from_raw_parts_mut(data.add(first * per_row), rows * per_row) }
        }
        // SAFETY: as above.
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
    file: &'a File,
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
        let (newlines, quoted) = if self.row.wide {
            // SAFETY: the processor has what `wide::newlines` needs (`wide::available()`).
            unsafe { wide::newlines(head) }
        } else {
            (memchr::memchr_iter(b'\n', head).count(), memchr(b'"', head).is_some())
        };
        let lines = newlines + usize::from(k == 0);
        let first_line = if k == 0 { 0 } else { memchr(b'\n', head).map_or(0, |i| i + 1) };
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
                if let Some(i) = memchr(b'\n', &buffer[len..len + n]) {
                    len += i + 1;
                    break;
                }
                len += n;
            }
        }
        // Quotes, even before the first line, are left to the careful reader.
        if quoted || memchr(b'"', &buffer[whole - 1..len]).is_some() {
            return None;
        }
        // SAFETY: the blocks' tickets give disjoint rows, and these lie below the bound.
        let mut piece = unsafe { self.columns.rows(first, lines, self.row.shape, missing) };
        let stop = if self.row.wide {
            // SAFETY: the processor has what `wide::rows` needs (`wide::available()`).
            unsafe { wide::rows(&self.row, &buffer[..len + PAD], first_line, lines, &mut piece)? }
        } else if self.row.simd {
            // SAFETY: the processor has what `simd::rows` needs (`simd::available()`).
            unsafe { simd::rows(&self.row, &buffer[..len + PAD], first_line, lines, &mut piece)? }
        } else {
            self.row.rows(&buffer[..len + PAD], first_line, lines, &mut piece)?
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
    /// counted theirs; passes on where the next block's rows start.
    fn ticket(&self, k: usize, lines: usize) -> Option<usize> {
        let mut spins = 0u32;
        let first = loop {
            let first = self.starts[k].load(Ordering::Acquire);
            if first != UNKNOWN {
                break first;
            }
            if self.failed.load(Ordering::Relaxed) {
                return None;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        };
        self.starts[k + 1].store(first + lines, Ordering::Release);
        Some(first)
    }
}

/// Reads `n` bytes of `file` from `at` into `buffer[offset..]`, growing the buffer as needed
/// with `PAD` bytes to spare for the vectorised scan's loads past the last line.
fn fill(file: &File, buffer: &mut Vec<u8>, offset: usize, at: usize, n: usize) -> Option<()> {
    if buffer.len() < offset + n + PAD {
        buffer.resize(offset + n + PAD, 0);
    }
    file.read_exact_at(&mut buffer[offset..offset + n], at as u64).ok()
}

/// Sets `buffer[offset]`, growing the buffer as `fill` does.
fn fill_byte(buffer: &mut Vec<u8>, offset: usize, byte: u8) {
    if buffer.len() < offset + 1 + PAD {
        buffer.resize(offset + 1 + PAD, 0);
    }
    buffer[offset] = byte;
}

/// How the rows of one file are read.
struct Row<'a, 'p> {
    delimiter: u8,
    /// What to do with each column of a line.
    steps: Vec<Step>,
    fields: &'a [(usize, Field<'p>)],
    missing: &'a [&'a [u8]],
    shape: Shape,
    simd: bool,
    /// The columns in order, numeric ones eight or four at a time where the processor can.
    ops: Vec<Op>,
    wide: bool,
}

/// A step of a line.
enum Op {
    /// Column `i`.
    Column(usize),
    /// Columns `first..first + count` (4 or 8), numeric ones whose values go to `at`, read
    /// together.
    Group { first: usize, count: usize, at: [usize; 8] },
}

/// What is done with one column of a line.
enum Step {
    Skip,
    /// A numeric field, read the quick way when it holds a plain decimal.
    Number {
        at: usize,
        field: usize,
    },
    /// These fields, read the general way.
    Fields(std::ops::Range<usize>),
}

impl<'a, 'p> Row<'a, 'p> {
    fn new(
        names: usize,
        delimiter: u8,
        fields: &'a [(usize, Field<'p>)],
        missing: &'a [&'a [u8]],
        shape: Shape,
    ) -> Self {
        // A missing marker that reads as a number ("-1") must not be taken for one.
        let numbers_may_be_missing = missing.iter().any(|m| parse_f32(m).is_some());
        let steps: Vec<Step> = (0..names)
            .map(|i| {
                let start = fields.partition_point(|(c, _)| *c < i);
                let end = fields.partition_point(|(c, _)| *c <= i);
                match &fields[start..end] {
                    [] => Step::Skip,
                    [(_, Field::Numeric { at, .. })] if !numbers_may_be_missing => {
                        Step::Number { at: *at, field: start }
                    }
                    _ => Step::Fields(start..end),
                }
            })
            .collect();
        let wide = wide::available();
        let mut ops = Vec::new();
        let mut i = 0;
        while i < steps.len() {
            let at = |k: usize| match steps.get(k) {
                Some(Step::Number { at, .. }) => Some(*at),
                _ => None,
            };
            let run = (i..steps.len()).take(8).take_while(|&k| at(k).is_some()).count();
            if wide && run >= 4 {
                let count = if run == 8 { 8 } else { 4 };
                let mut to = [0; 8];
                for (j, to) in to.iter_mut().take(count).enumerate() {
                    *to = at(i + j).unwrap_or_default();
                }
                ops.push(Op::Group { first: i, count, at: to });
                i += count;
            } else {
                ops.push(Op::Column(i));
                i += 1;
            }
        }
        Row { delimiter, steps, fields, missing, shape, simd: simd::available(), ops, wide }
    }

    /// Reads `lines` lines from `buffer[pos..]` into `piece`; where the next line starts.
    /// `buffer` holds at least `PAD` bytes past the last line.
    #[inline(always)]
    fn rows(&self, buffer: &[u8], mut pos: usize, lines: usize, piece: &mut Piece) -> Option<usize> {
        let mut separators = Separators::new(buffer, pos, self.delimiter);
        for _ in 0..lines {
            pos = self.parse(buffer, pos, &mut separators, piece)?;
        }
        Some(pos)
    }

    /// Reads the line at `buffer[pos..]` into a new row of `piece`; where the next line starts.
    /// `None` for an empty line, a line that does not end after its last field, or a field the
    /// fast way cannot read. A line with too few fields is caught too: it ends in a comma, or a
    /// later one does, since every line of the block must end at a newline of its own.
    #[inline(always)]
    fn parse(&self, buffer: &[u8], pos: usize, separators: &mut Separators, piece: &mut Piece) -> Option<usize> {
        if matches!(buffer.get(pos)?, b'\n' | b'\r') {
            return None;
        }
        let row = piece.rows;
        let base = row * self.shape.width;
        let mut start = pos;
        let mut end = pos;
        for op in &self.ops {
            match *op {
                Op::Column(i) => {
                    end = separators.next()?;
                    self.column(i, buffer, start, end, row, piece)?;
                }
                Op::Group { first, count, at } => {
                    let (a, b, c, d) = (separators.next()?, separators.next()?, separators.next()?, separators.next()?);
                    let ends = if count == 8 {
                        [a, b, c, d, separators.next()?, separators.next()?, separators.next()?, separators.next()?]
                    } else {
                        [a, b, c, d, a, b, c, d]
                    };
                    end = ends[count - 1];
                    let mut values = [0f32; 8];
                    // SAFETY: `wide` is what `wide::available()` said; the loads lie in `buffer`.
                    if self.wide && ends[0] >= 16 && unsafe { wide::eight(buffer, ends, self.delimiter, &mut values) } {
                        let row = piece.block.get_mut(base..base + self.shape.width)?;
                        for (&x, &at) in values.iter().zip(&at).take(count) {
                            *row.get_mut(at)? = x;
                        }
                    } else {
                        for (j, &end) in ends[..count].iter().enumerate() {
                            self.column(first + j, buffer, start, end, row, piece)?;
                            start = end + 1;
                        }
                    }
                }
            }
            start = end + 1;
        }
        if buffer[end] != b'\n' {
            return None;
        }
        piece.rows += 1;
        Some(start)
    }

    /// Reads column `i` of row `row`, the field `buffer[start..end]`.
    #[inline(always)]
    fn column(&self, i: usize, buffer: &[u8], start: usize, end: usize, row: usize, piece: &mut Piece) -> Option<()> {
        let last = i == self.steps.len() - 1;
        match &self.steps[i] {
            Step::Skip => {}
            Step::Number { at, field } => {
                // The last field of a CRLF line ends before its CR.
                let stop = if last && end > start && buffer[end - 1] == b'\r' { end - 1 } else { end };
                match self.number(buffer, start, stop) {
                    Some(x) => *piece.block.get_mut(row * self.shape.width + at)? = x,
                    None => read_field(trim(&buffer[start..stop]), &self.fields[*field].1, row, self.missing, piece)?,
                }
            }
            Step::Fields(range) => {
                let raw = if last { trim_cr(&buffer[start..end]) } else { &buffer[start..end] };
                for (_, field) in &self.fields[range.clone()] {
                    read_field(trim(raw), field, row, self.missing, piece)?;
                }
            }
        }
        Some(())
    }

    /// The plain decimal that is all of `buffer[start..end]`, when the quick way can read it.
    #[inline(always)]
    fn number(&self, buffer: &[u8], start: usize, end: usize) -> Option<f32> {
        if self.simd {
            // SAFETY: `simd` is what `simd::available()` said.
            return unsafe { simd::number(buffer, start, end) };
        }
        let (x, stop) = scan_number(buffer, start)?;
        (stop == end).then_some(x)
    }
}

/// The separators (delimiters and newlines) after a position, found 64 bytes at a time, so
/// that where a field ends never waits on reading the field before it.
struct Separators<'b> {
    buffer: &'b [u8],
    /// Where the 64 bytes `mask` covers start.
    base: usize,
    /// One bit per separator not yet taken.
    mask: u64,
    delimiter: u8,
}

impl<'b> Separators<'b> {
    #[inline(always)]
    fn new(buffer: &'b [u8], from: usize, delimiter: u8) -> Self {
        let mask = separators(buffer, from, delimiter);
        Separators { buffer, base: from, mask, delimiter }
    }

    /// Where the next separator is; `None` past the buffer's end.
    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.base += 64;
            if self.base >= self.buffer.len() {
                return None;
            }
            self.mask = separators(self.buffer, self.base, self.delimiter);
        }
        let at = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// One bit per delimiter or newline in `buffer[from..from + 64]` (bytes past the end count as
/// neither).
#[inline(always)]
fn separators(buffer: &[u8], from: usize, delimiter: u8) -> u64 {
    let Some(chunk) = buffer.get(from..from + 64) else {
        let tail = buffer.get(from..).unwrap_or_default();
        return tail.iter().enumerate().fold(0, |m, (i, &b)| m | (u64::from(b == delimiter || b == b'\n') << i));
    };
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; the four loads lie in `chunk`.
        unsafe {
            let (d, n) = (_mm_set1_epi8(delimiter as i8), _mm_set1_epi8(b'\n' as i8));
            let mut mask = 0u64;
            for k in 0..4 {
                let v = _mm_loadu_si128(chunk.as_ptr().add(16 * k).cast());
                let hit = _mm_or_si128(_mm_cmpeq_epi8(v, d), _mm_cmpeq_epi8(v, n));
                mask |= u64::from(_mm_movemask_epi8(hit) as u16) << (16 * k);
            }
            mask
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    chunk.iter().enumerate().fold(0, |m, (i, &b)| m | (u64::from(b == delimiter || b == b'\n') << i))
}

/// A numeric field's value: the number it holds, or its column's default for a missing marker
/// (`row`, a table row, is then noted in `missing_rows`).
fn numeric(
    raw: &[u8],
    default: Option<f32>,
    missing: &[&[u8]],
    missing_rows: &mut Vec<usize>,
    row: usize,
) -> Option<f32> {
    if missing.contains(&raw) {
        missing_rows.push(row);
        return default;
    }
    let x = parse_f32(raw).or_else(|| std::str::from_utf8(raw).ok()?.parse::<f32>().ok())?;
    x.is_finite().then_some(x)
}

fn read_field(raw: &[u8], field: &Field, row: usize, missing: &[&[u8]], piece: &mut Piece) -> Option<()> {
    let is_missing = missing.contains(&raw);
    match field {
        Field::Numeric { at, default } => {
            let x = numeric(raw, *default, missing, &mut piece.missing[*at], piece.first + row)?;
            *piece.block.get_mut(row * piece.shape.width + at)? = x;
        }
        Field::Categorical { at, ids, vocabulary } => {
            let id = if is_missing {
                -1
            } else {
                let value = std::str::from_utf8(raw).ok()?;
                match ids {
                    CategoricalIds::Vocabulary { oov_buckets, .. } => match vocabulary.get(raw) {
                        Some(id) => *id,
                        None if *oov_buckets > 0 => vocabulary.len() as i64 + super::hash::bucket(value, *oov_buckets),
                        None => return None,
                    },
                    CategoricalIds::Hash { hash_buckets } => super::hash::bucket(value, *hash_buckets),
                    CategoricalIds::Identity { identity } => {
                        let id = value.parse::<i64>().ok()?;
                        (0..*identity as i64).contains(&id).then_some(id)?
                    }
                }
            };
            *piece.ids.get_mut(row * piece.shape.categorical + at)? = id;
        }
        Field::Class { vocabulary, n_classes } => {
            if is_missing || raw.is_empty() {
                return None;
            }
            let class = match vocabulary {
                Some(map) => *map.get(raw)?,
                None => {
                    let c = match raw {
                        // Most class labels: one digit.
                        [d] if d.is_ascii_digit() => i64::from(d - b'0'),
                        _ => std::str::from_utf8(raw).ok()?.parse::<i64>().ok()?,
                    };
                    (0..*n_classes).contains(&c).then_some(c)?
                }
            };
            *piece.classes.get_mut(row)? = class;
        }
        Field::Value => {
            if is_missing || raw.is_empty() {
                return None;
            }
            let v = parse_f32(raw).or_else(|| std::str::from_utf8(raw).ok()?.parse::<f32>().ok())?;
            *piece.values.get_mut(row)? = v.is_finite().then_some(v)?;
        }
    }
    Some(())
}

/// A number starting at `line[start]`: its value and where it ends, at the first byte that
/// cannot continue it (the caller judges that byte). `None` when no number starts there or it
/// has more than 15 significant digits; the general way then reads the field. The digits are
/// read eight bytes at a time from the line itself, so a field's neighbours pad the window.
fn scan_number(line: &[u8], start: usize) -> Option<(f32, usize)> {
    let mut i = start;
    let negative = match line.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let (mut mantissa, whole) = run_of_digits(line, &mut i)?;
    let mut exponent = 0i32;
    let mut count = whole;
    if line.get(i) == Some(&b'.') {
        i += 1;
        let (fraction, n) = run_of_digits(line, &mut i)?;
        mantissa = mantissa.checked_mul(*POW10_U64.get(n)?)?.checked_add(fraction)?;
        exponent = -(n as i32);
        count += n;
    }
    if count == 0 {
        return None;
    }
    if let Some(b'e' | b'E') = line.get(i) {
        i += 1;
        let sign = match line.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let (e, n) = run_of_digits(line, &mut i)?;
        if n == 0 || e > 1000 {
            return None;
        }
        exponent += sign * e as i32;
    }
    Some((to_f32(negative, mantissa, exponent)?, i))
}

/// The digits at `line[*i..]` as a number, and how many there were (at most 16, else `None`).
#[inline]
fn run_of_digits(line: &[u8], i: &mut usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut count = 0;
    while let Some(window) = line.get(*i..*i + 8) {
        let chunk = u64::from_le_bytes(window.try_into().ok()?);
        let k = leading_digits(chunk);
        if k > 0 {
            value = value.checked_mul(POW10_U64[k])?.checked_add(first_digits(chunk, k))?;
            count += k;
            *i += k;
        }
        if k < 8 {
            return (count <= 16).then_some((value, count));
        }
        if count > 16 {
            return None;
        }
    }
    while let Some(&b) = line.get(*i) {
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            break;
        }
        value = value.checked_mul(10)?.checked_add(d as u64)?;
        count += 1;
        *i += 1;
    }
    (count <= 16).then_some((value, count))
}

/// How many of the eight bytes, from the first, are ASCII digits.
#[inline]
fn leading_digits(chunk: u64) -> usize {
    // Per byte: zero when the high nibble is 3 and adding 6 keeps it 3, i.e. '0'..='9'. Adding
    // 6 carries into the next byte only from bytes 0xFA and above, which UTF-8 never has.
    let high = (chunk & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030;
    let shifted = (chunk.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030;
    ((high | shifted).trailing_zeros() / 8) as usize
}

/// The value of the first `k` (1 to 8) digits of `chunk`.
#[inline]
fn first_digits(chunk: u64, k: usize) -> u64 {
    // Left-pad with '0's to eight digits, then combine them pairwise.
    let padded = if k == 8 { chunk } else { (chunk << ((8 - k) * 8)) | (0x3030_3030_3030_3030u64 >> (k * 8)) };
    let v = padded - 0x3030_3030_3030_3030;
    let v = (v * 10) + (v >> 8);
    let v = ((v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32))
        + ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
        >> 32;
    v & 0xFFFF_FFFF
}

const POW10_U64: [u64; 17] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
];

const NEG_POW10: [f64; 23] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17,
    1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A decimal like `-12.5`, `0.1234567` or `3e-2` as the nearest f32, when that can be known
/// cheaply (see `to_f32`), so it equals `str::parse::<f32>`; `None` sends the text to the
/// standard parser.
pub fn parse_f32(text: &[u8]) -> Option<f32> {
    let (value, end) = scan_number(text, 0)?;
    (end == text.len()).then_some(value)
}

/// `±mantissa × 10^exponent` as the nearest f32, when that can be known cheaply; `None` sends
/// the text to the standard parser. The value is computed in f64 with one multiplication by a
/// power of ten, three roundings at most (the mantissa above 2^53, the power below 1, the
/// product), so within 3 f64 ulps of the exact value. f64 keeps 29 more bits than f32, so
/// narrowing rounds correctly unless the result lies within a few ulps of a midpoint between
/// two f32s: that case is left to the standard parser. No branch depends on the digits.
#[inline]
fn to_f32(negative: bool, mantissa: u64, exponent: i32) -> Option<f32> {
    if mantissa >= 1_000_000_000_000_000 || !(-22..=22).contains(&exponent) {
        return None;
    }
    let m = mantissa as i64 as f64;
    let r = if exponent >= 0 { m * POW10[exponent as usize] } else { m * NEG_POW10[(-exponent) as usize] };
    // Within 8 ulps of a midpoint (low 29 bits 0x1000_0000): too close to call.
    if (r.to_bits() & 0x1FFF_FFFF).wrapping_sub(0x1000_0000 - 8) <= 16 {
        return None;
    }
    Some(f32::from_bits((r as f32).to_bits() | u32::from(negative) << 31))
}

/// Plain decimals read sixteen bytes at a time with SSE4.1, where the processor has it.
mod simd {
    /// Whether `scan` and `rows` may be called on this processor.
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::is_x86_feature_detected!("sse4.1") && std::is_x86_feature_detected!("popcnt");
        #[cfg(not(target_arch = "x86_64"))]
        return false;
    }

    /// The value of `buffer[start..end]` when it is a plain decimal (`-1.25`, `37`, `.5`: at
    /// most 15 characters after the sign, no exponent, no `+`), as `parse_f32` reads it; `None`
    /// for anything else, which the general way then reads.
    ///
    /// # Safety
    /// `available()` returned true.
    #[inline]
    pub unsafe fn number(buffer: &[u8], start: usize, end: usize) -> Option<f32> {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the processor has SSE4.1 (the caller's promise).
        return unsafe { number_sse(buffer, start, end) };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (buffer, start, end);
            None
        }
    }

    /// `Row::rows` compiled for SSE4.1 where there is such a thing, so that `number_sse`
    /// inlines into it.
    ///
    /// # Safety
    /// `available()` returned true.
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "sse4.1,popcnt"))]
    pub unsafe fn rows(
        row: &super::Row,
        buffer: &[u8],
        pos: usize,
        lines: usize,
        piece: &mut super::Piece,
    ) -> Option<usize> {
        row.rows(buffer, pos, lines, piece)
    }

    /// For a field `len` bytes long (a sign if `signed`, then digits and at most one point)
    /// with its point at `point` (16: none), the shuffle that right-aligns its digits in sixteen
    /// lanes, zeros in front.
    #[cfg(target_arch = "x86_64")]
    const SHUFFLES: [[[[u8; 16]; 17]; 17]; 2] = {
        let mut table = [[[[0x80u8; 16]; 17]; 17]; 2];
        let mut signed = 0;
        while signed < 2 {
            let mut len = signed;
            while len < 17 {
                let mut point = 0;
                while point < 17 {
                    let count = len - signed - if point >= signed && point < len { 1 } else { 0 };
                    let (mut src, mut k) = (signed, 0);
                    while src < len {
                        if src != point {
                            table[signed][len][point][16 - count + k] = src as u8;
                            k += 1;
                        }
                        src += 1;
                    }
                    point += 1;
                }
                len += 1;
            }
            signed += 1;
        }
        table
    };

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.1,popcnt")]
    #[inline]
    unsafe fn number_sse(buffer: &[u8], start: usize, end: usize) -> Option<f32> {
        use std::arch::x86_64::*;
        // The sign is read beside the digits, not before them, so the load waits on nothing
        // but where the field starts.
        let len = end.checked_sub(start)?;
        if len == 0 || len > 16 {
            return None;
        }
        let bytes = buffer.get(start..start + 16)?;
        // SAFETY: a 16-byte load from a 16-byte slice.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
        let negative = bytes[0] == b'-';
        let signed = usize::from(negative);
        let d = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        let digits = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) as u32;
        let points = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8))) as u32;
        let field = ((1u32 << len) - 1) & !(signed as u32);
        if (digits | points) & field != field {
            return None;
        }
        let points = points & field;
        let (point, fraction) = match points.count_ones() {
            0 => (16, 0),
            1 => {
                let k = points.trailing_zeros() as usize;
                (k, len - k - 1)
            }
            _ => return None,
        };
        let count = len - signed - usize::from(point < 16);
        if count == 0 || count > 15 {
            return None;
        }
        // SAFETY: a 16-byte load from a 16-byte array.
        let order = unsafe { _mm_loadu_si128(SHUFFLES[signed][len][point].as_ptr().cast()) };
        let aligned = _mm_shuffle_epi8(d, order);
        // Pairs, then fours, then eights of digits, each step one multiply-add.
        let pairs = _mm_maddubs_epi16(aligned, _mm_setr_epi8(10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1));
        let fours = _mm_madd_epi16(pairs, _mm_setr_epi16(100, 1, 100, 1, 100, 1, 100, 1));
        let fours = _mm_packus_epi32(fours, fours);
        let eights = _mm_madd_epi16(fours, _mm_setr_epi16(10_000, 1, 10_000, 1, 10_000, 1, 10_000, 1));
        // What `to_f32` does, kept in vector registers: the two halves (below 10^8 each) to
        // f64, joined exactly (below 10^15), times the power of ten, the same midpoint test,
        // narrowed, signed.
        let halves = _mm_cvtepi32_pd(eights);
        let mantissa = _mm_add_sd(_mm_mul_sd(halves, _mm_set_sd(1e8)), _mm_unpackhi_pd(halves, halves));
        let r = _mm_mul_sd(mantissa, _mm_set_sd(super::NEG_POW10[fraction]));
        if (_mm_cvtsi128_si64(_mm_castpd_si128(r)) as u32 & 0x1FFF_FFFF).wrapping_sub(0x1000_0000 - 8) <= 16 {
            return None;
        }
        let x = _mm_cvtss_f32(_mm_cvtsd_ss(_mm_setzero_ps(), r));
        Some(f32::from_bits(x.to_bits() | u32::from(negative) << 31))
    }
}

/// Eight plain decimals at a time with AVX-512, where the processor has it: each field's last
/// sixteen bytes fill a quarter of one of two registers, and every step after the loads works
/// on all eight at once.
mod wide {
    /// Whether the functions here may be called on this processor.
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return super::simd::available()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vbmi")
            && std::is_x86_feature_detected!("avx512bitalg");
        #[cfg(not(target_arch = "x86_64"))]
        return false;
    }

    /// How many newlines `bytes` holds, and whether it holds a quote.
    ///
    /// # Safety
    /// `available()` returned true.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,popcnt")]
    pub unsafe fn newlines(bytes: &[u8]) -> (usize, bool) {
        use std::arch::x86_64::*;
        let (newline, quote) = (_mm512_set1_epi8(b'\n' as i8), _mm512_set1_epi8(b'"' as i8));
        let (mut count, mut quotes) = (0u64, 0u64);
        let mut chunks = bytes.chunks_exact(64);
        for chunk in &mut chunks {
            // SAFETY: a 64-byte load from a 64-byte chunk.
            let v = unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) };
            count += u64::from(_mm512_cmpeq_epi8_mask(v, newline).count_ones());
            quotes |= _mm512_cmpeq_epi8_mask(v, quote);
        }
        let rest = chunks.remainder();
        // SAFETY: the masked load reads only the bytes of `rest`.
        let v = unsafe { _mm512_maskz_loadu_epi8((1u64 << rest.len()) - 1, rest.as_ptr().cast()) };
        let keep = (1u64 << rest.len()) - 1;
        count += u64::from((_mm512_cmpeq_epi8_mask(v, newline) & keep).count_ones());
        quotes |= _mm512_cmpeq_epi8_mask(v, quote) & keep;
        (count as usize, quotes != 0)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn newlines(bytes: &[u8]) -> (usize, bool) {
        (memchr::memchr_iter(b'\n', bytes).count(), memchr::memchr(b'"', bytes).is_some())
    }

    /// `Row::rows` compiled for AVX-512, so that `eight` inlines into it.
    ///
    /// # Safety
    /// `available()` returned true.
    #[cfg_attr(
        target_arch = "x86_64",
        target_feature(enable = "sse4.1,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512bitalg")
    )]
    pub unsafe fn rows(
        row: &super::Row,
        buffer: &[u8],
        pos: usize,
        lines: usize,
        piece: &mut super::Piece,
    ) -> Option<usize> {
        row.rows(buffer, pos, lines, piece)
    }

    /// Reads the eight fields that end at `ends` into `out` when each is a plain decimal of at
    /// most 15 bytes, as `simd::number` reads it; false, and `out` untouched, when any is not.
    /// The fields need not be next to each other.
    ///
    /// # Safety
    /// `available()` returned true; `16 <= ends[j] <= buffer.len()` for each j.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.1,popcnt,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512bitalg")]
    #[inline]
    pub unsafe fn eight(buffer: &[u8], ends: [usize; 8], delimiter: u8, out: &mut [f32; 8]) -> bool {
        use std::arch::x86_64::*;
        // Lane j of a register: the 16 bytes before field j's end, so the field lies at the
        // lane's top, the separator before it below. Fields 0-3 fill one register, 4-7 another.
        let at = |j: usize| unsafe { _mm_loadu_si128(buffer.as_ptr().add(ends[j] - 16).cast()) };
        let four = |j: usize| {
            let low = _mm256_inserti128_si256(_mm256_castsi128_si256(at(j)), at(j + 1), 1);
            let high = _mm256_inserti128_si256(_mm256_castsi128_si256(at(j + 2)), at(j + 3), 1);
            _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1)
        };
        let (va, vb) = (four(0), four(4));
        let byte = |b: u8| _mm512_set1_epi8(b as i8);
        let (da, db) = (_mm512_sub_epi8(va, byte(b'0')), _mm512_sub_epi8(vb, byte(b'0')));
        // The eight 16-bit masks side by side in 16-bit lanes, so each step serves all eight.
        let lanes = |a: u64, b: u64| _mm_set_epi64x(b as i64, a as i64);
        let separators =
            |v: __m512i| _mm512_cmpeq_epi8_mask(v, byte(delimiter)) | _mm512_cmpeq_epi8_mask(v, byte(b'\n'));
        let separators = lanes(separators(va), separators(vb));
        let digits = lanes(_mm512_cmple_epu8_mask(da, byte(9)), _mm512_cmple_epu8_mask(db, byte(9)));
        let points = lanes(_mm512_cmpeq_epi8_mask(va, byte(b'.')), _mm512_cmpeq_epi8_mask(vb, byte(b'.')));
        let minus = lanes(_mm512_cmpeq_epi8_mask(va, byte(b'-')), _mm512_cmpeq_epi8_mask(vb, byte(b'-')));
        // Each lane's bits at and below its highest set bit.
        let below = |x: __m128i| {
            let x = _mm_or_si128(x, _mm_srli_epi16(x, 1));
            let x = _mm_or_si128(x, _mm_srli_epi16(x, 2));
            let x = _mm_or_si128(x, _mm_srli_epi16(x, 4));
            _mm_or_si128(x, _mm_srli_epi16(x, 8))
        };
        let separators = below(separators);
        // The field: the bytes above the last separator.
        let field = _mm_andnot_si128(separators, _mm_set1_epi16(-1));
        let digits = _mm_and_si128(digits, field);
        let points = _mm_and_si128(points, field);
        let lowest = _mm_andnot_si128(_mm_slli_epi16(field, 1), field);
        let sign = _mm_and_si128(_mm_and_si128(minus, field), lowest);
        // Anything but digits, one point and a leading minus; no digit; no separator in the
        // lane (a field longer than 15 bytes).
        let wrong = _mm_andnot_si128(_mm_or_si128(_mm_or_si128(digits, points), sign), field);
        let two_points = _mm_and_si128(points, _mm_sub_epi16(points, _mm_set1_epi16(1)));
        let zero = _mm_setzero_si128();
        let empty = _mm_or_si128(_mm_cmpeq_epi16(digits, zero), _mm_cmpeq_epi16(separators, zero));
        if _mm_test_all_zeros(_mm_or_si128(_mm_or_si128(wrong, two_points), empty), _mm_set1_epi16(-1)) == 0 {
            return false;
        }

        // Where each point is, counted from the lane's bottom, plus one (0: none).
        let point = _mm_popcnt_epi16(below(points));
        // Digits below a point move up one byte over it; bytes that are not digits become 0.
        const SPREAD: [u8; 64] = {
            let mut table = [0u8; 64];
            let mut i = 0;
            while i < 64 {
                table[i] = (i / 16 * 2) as u8;
                i += 1;
            }
            table
        };
        const IOTA: [u8; 64] = {
            let mut table = [0u8; 64];
            let mut i = 0;
            while i < 64 {
                table[i] = (i % 16) as u8;
                i += 1;
            }
            table
        };
        // SAFETY: 64-byte loads from 64-byte arrays.
        let (spread, iota) =
            unsafe { (_mm512_loadu_si512(SPREAD.as_ptr().cast()), _mm512_loadu_si512(IOTA.as_ptr().cast())) };
        let digit_bytes = _mm_cvtsi128_si64(digits) as u64;
        let quarters = |d: __m512i, point: __m128i, digits: u64| {
            let point_bytes = _mm512_permutexvar_epi8(spread, _mm512_castsi128_si512(point));
            let under = _mm512_cmpgt_epu8_mask(point_bytes, iota);
            let order = _mm512_mask_sub_epi8(iota, under, iota, byte(1));
            let aligned = _mm512_shuffle_epi8(_mm512_maskz_mov_epi8(digits, d), order);
            // As `simd::number`: pairs, then fours of digits.
            let pairs = _mm512_maddubs_epi16(aligned, _mm512_set1_epi16(0x010A));
            _mm512_madd_epi16(pairs, _mm512_set1_epi32(0x0001_0064))
        };
        let fa = quarters(da, point, digit_bytes);
        let fb = quarters(db, _mm_unpackhi_epi64(point, point), _mm_extract_epi64::<1>(digits) as u64);
        // Per 128-bit lane j: the eights of fields j and 4 + j, joined exactly in 64 bits.
        let eights = _mm512_madd_epi16(_mm512_packus_epi32(fa, fb), _mm512_set1_epi32(0x0001_2710));
        let mantissa =
            _mm512_add_epi64(_mm512_mul_epu32(eights, _mm512_set1_epi64(100_000_000)), _mm512_srli_epi64(eights, 32));
        let m = _mm512_cvtepu64_pd(mantissa);
        // So the values come in the order 0, 4, 1, 5, 2, 6, 3, 7.
        let interleave =
            |x: __m128i| _mm_shuffle_epi8(x, _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
        // Times 10^-(digits after the point), one rounding, as `simd::number`.
        let fraction = _mm512_and_si512(
            _mm512_sub_epi64(_mm512_set1_epi64(16), _mm512_cvtepu16_epi64(interleave(point))),
            _mm512_set1_epi64(15),
        );
        // SAFETY: 64-byte loads from the 23-entry table.
        let (p0, p1) =
            unsafe { (_mm512_loadu_pd(super::NEG_POW10.as_ptr()), _mm512_loadu_pd(super::NEG_POW10.as_ptr().add(8))) };
        let r = _mm512_mul_pd(m, _mm512_permutex2var_pd(p0, fraction, p1));
        let bits = _mm512_and_si512(_mm512_castpd_si512(r), _mm512_set1_epi64(0x1FFF_FFFF));
        let near =
            _mm512_cmple_epu64_mask(_mm512_sub_epi64(bits, _mm512_set1_epi64(0x1000_0000 - 8)), _mm512_set1_epi64(16));
        if near != 0 {
            return false;
        }
        let x = _mm256_castps_si256(_mm512_cvtpd_ps(r));
        let negative = _mm256_cmpneq_epu32_mask(_mm256_cvtepu16_epi32(interleave(sign)), _mm256_setzero_si256());
        let x = _mm256_mask_or_epi32(x, negative, x, _mm256_set1_epi32(i32::MIN));
        let x = _mm256_permutexvar_epi32(_mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7), x);
        // SAFETY: 32 bytes into the eight floats of `out`.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), x) };
        true
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn eight(_: &[u8], _: [usize; 8], _: u8, _: &mut [f32; 8]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::parse_f32;

    #[test]
    fn eight_digits_at_once() {
        let chunk = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
        assert_eq!(super::leading_digits(chunk(b"01234567")), 8);
        assert_eq!(super::leading_digits(chunk(b"0123.567")), 4);
        assert_eq!(super::leading_digits(chunk(b"0123456:")), 7);
        assert_eq!(super::leading_digits(chunk(b"/1234567")), 0);
        assert_eq!(super::first_digits(chunk(b"01234567"), 8), 1_234_567);
        assert_eq!(super::first_digits(chunk(b"99999999"), 8), 99_999_999);
        assert_eq!(super::first_digits(chunk(b"4271,5.1"), 4), 4271);
        assert_eq!(super::first_digits(chunk(b"7,xxxxxx"), 1), 7);
        assert_eq!(super::scan_number(b"-12.25,3", 0), Some((-12.25, 6)));
        assert_eq!(super::scan_number(b"1,2", 2), Some((2.0, 3)));
        assert_eq!(super::scan_number(b"1 ,2", 0), Some((1.0, 1)));
        assert_eq!(super::scan_number(b" 1,2", 0), None);
    }

    /// The vectorised scan gives what the scalar one gives, or leaves the field to it.
    #[test]
    fn sixteen_bytes_at_once() {
        if !super::simd::available() {
            return;
        }
        let mut rng = crate::rng::Rng::new(4);
        let mut fields: Vec<String> = [
            "0",
            "-0",
            "5.",
            ".5",
            "-.5",
            "-",
            ".",
            "",
            "1.2.3",
            "+1.5",
            "1e5",
            "2.5E-3",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "-99999999.9999999",
            "12345678.5",
            "NA",
            "1 ",
            "--1",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..100_000 {
            let x = rng.normal() * 10f64.powi(rng.below(12) as i32 - 6);
            let digits = rng.below(12) as usize;
            fields.push(format!("{x:.digits$}"));
        }
        let mut checked = 0;
        for field in &fields {
            // Whatever follows the field must not change what it reads as.
            for (before, after) in [("", ","), ("7,", "\n"), ("", "5.5"), ("-", "x")] {
                let buffer = format!("{before}{field}{after}{}", "9".repeat(20));
                let (start, end) = (before.len(), before.len() + field.len());
                // SAFETY: checked above.
                if let Some(fast) = unsafe { super::simd::number(buffer.as_bytes(), start, end) } {
                    let slow = parse_f32(field.as_bytes()).unwrap();
                    assert_eq!(fast.to_bits(), slow.to_bits(), "{buffer}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 350_000, "the vectorised scan took only {checked}");
    }

    /// Eight fields at once read as each alone does, and are read at once whenever each alone
    /// is read the quick way in at most 15 bytes.
    #[test]
    fn eight_fields_at_once() {
        if !super::wide::available() {
            return;
        }
        let mut rng = crate::rng::Rng::new(11);
        let odd = ["0", "-0", "5.", ".5", "-.5", "-", ".", "", "1.2.3", "+1.5", "1e5", "NA", "1 ", "--1", "5-", "1.-5"];
        let odd = odd.map(String::from);
        let long = ["123456789012345", "-12345678901234", "0.00000000000001", "-1.2345678901234"].map(String::from);
        let field = |rng: &mut crate::rng::Rng| match rng.below(40) {
            0 => odd[rng.below(odd.len() as u64) as usize].clone(),
            1 => long[rng.below(long.len() as u64) as usize].clone(),
            _ => {
                let x = rng.normal() * 10f64.powi(rng.below(12) as i32 - 6);
                let digits = rng.below(10) as usize;
                format!("{x:.digits$}")
            }
        };
        let (mut together, mut alone) = (0, 0);
        for _ in 0..100_000 {
            let fields: Vec<String> = (0..8).map(|_| field(&mut rng)).collect();
            // Fields after the first may be separated by a newline, or by other fields.
            let mut line = "9;".repeat(8);
            let mut ends = [0; 8];
            for (j, f) in fields.iter().enumerate() {
                line.push_str(["\n", ";", ";", ";-1.5;"][rng.below(4) as usize]);
                line.push_str(f);
                ends[j] = line.len();
            }
            let buffer = format!("{line}\n{}", "7".repeat(64));
            let mut out = [0f32; 8];
            // SAFETY: checked above; each field ends past byte 16.
            let read = unsafe { super::wide::eight(buffer.as_bytes(), ends, b';', &mut out) };
            let each: Vec<Option<f32>> = (0..8)
                .map(|j| {
                    // SAFETY: checked above.
                    unsafe { super::simd::number(buffer.as_bytes(), ends[j] - fields[j].len(), ends[j]) }
                        .filter(|_| fields[j].len() <= 15)
                })
                .collect();
            if read {
                for j in 0..8 {
                    assert_eq!(Some(out[j].to_bits()), each[j].map(f32::to_bits), "{fields:?}");
                }
                together += 1;
            } else {
                assert!(each.iter().any(Option::is_none), "{fields:?} could be read at once");
                alone += 1;
            }
        }
        assert!(together > 40_000 && alone > 20_000, "{together} read at once, {alone} not");
    }

    #[test]
    fn parses_like_the_standard_library() {
        let mut rng = crate::rng::Rng::new(9);
        let mut checked = 0;
        for _ in 0..200_000 {
            let x = (rng.normal() * 10f64.powi((rng.below(9) as i32) - 4)) as f32;
            for text in [
                format!("{x:.7}"),
                format!("{x}"),
                format!("{x:e}"),
                format!("{:.3}", x * 1000.0),
                format!("{:.9}", x * 100.0),
            ] {
                if let Some(fast) = parse_f32(text.as_bytes()) {
                    assert_eq!(fast.to_bits(), text.parse::<f32>().unwrap().to_bits(), "{text}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 800_000, "the fast path took only {checked} of 1000000");
        for text in ["0", "-0.0", "+1.5", "1e3", "2.5E-2", ".5", "5.", "0.0000001234567", "123456789012345"] {
            assert_eq!(parse_f32(text.as_bytes()), Some(text.parse::<f32>().unwrap()), "{text}");
        }
        // A tie between two f32s: the fast path declines rather than guess.
        assert_eq!(parse_f32(b"12345678.5"), None);
        for text in [
            "",
            "-",
            "1e",
            "abc",
            "1.2.3",
            "nan",
            "inf",
            "1e400",
            "12345678901234567890",
            "0.00000000000000000000001234567890123456789",
        ] {
            assert_eq!(parse_f32(text.as_bytes()), None, "{text}");
        }
    }
}
