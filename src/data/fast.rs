//! The fast way through a clean CSV file: no quotes, one value per field, every row good. The
//! file is cut into one piece per core at line boundaries; each piece is read once, in large
//! blocks, into columns of its own, and the pieces are joined in order. Anything unusual (a quote, an empty line, a field
//! that does not parse) returns `None`, and the careful reader, which names file, line and
//! column, reads the file instead. Both produce the same table, bit for bit.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use camino::Utf8Path;

use super::{finish_stats, IdColumn, Labels, NumericBlock, NumericColumn, Purpose, Stats, Table};
use crate::plan::{CategoricalIds, FeatureKind, HeadKind, Plan};

const BLOCK: usize = 1 << 20;
/// Bytes after a block that a 16-byte load at its last field may touch.
const PAD: usize = 32;

/// How one needed field is read.
enum Field<'p> {
    Numeric { at: usize, default: Option<f32> },
    Categorical { at: usize, ids: &'p CategoricalIds, vocabulary: HashMap<&'p [u8], i64> },
    Class { vocabulary: Option<HashMap<&'p [u8], i64>>, n_classes: i64 },
    Value,
}

/// What one piece of the file produced: its rows, laid out as the table's.
struct Piece {
    rows: usize,
    block: Vec<f32>,
    ids: Vec<i64>,
    classes: Vec<i64>,
    values: Vec<f32>,
    /// Per numeric column, the rows (counted in this piece) that held a missing marker.
    missing: Vec<Vec<usize>>,
    shape: Shape,
}

/// How many values of each kind a row holds.
#[derive(Clone, Copy)]
struct Shape {
    width: usize,
    categorical: usize,
    labelled: bool,
}

pub fn load(plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Option<Table> {
    let data = &plan.data;
    let file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len() as usize;
    let mut head = vec![0u8; size.min(1 << 16)];
    file.read_exact_at(&mut head, 0).ok()?;
    let bom = if head.starts_with(b"\xef\xbb\xbf") { 3 } else { 0 };
    let delimiter = data.delimiter as u8;
    let (names, body_start) = if data.header {
        let end = memchr(b'\n', &head[bom..])? + bom;
        let line = trim_cr(&head[bom..end]);
        if line.contains(&b'"') {
            return None;
        }
        let header: Vec<String> =
            line.split(|&b| b == delimiter).map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
        // A repeated name is an error the careful reader reports.
        if super::repeated(&header).is_some() {
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

    // One piece per core, cut at line starts.
    let threads = super::cores().clamp(1, 8);
    let mut cuts = vec![body_start];
    for t in 1..threads {
        let guess = body_start + (size - body_start) * t / threads;
        let mut window = vec![0u8; 4096.min(size - guess)];
        file.read_exact_at(&mut window, guess as u64).ok()?;
        let next = memchr(b'\n', &window)? + guess + 1;
        if next > *cuts.last()? && next < size {
            cuts.push(next);
        }
    }
    cuts.push(size);

    // One pass per piece, each into its own columns; the pieces are joined in order after.
    let labelled = purpose == Purpose::Labelled;
    let shape = Shape { width, categorical: categorical.len(), labelled };
    let estimate = estimate_rows(&head[body_start.min(head.len())..], size - body_start, threads);
    let pieces: Vec<Piece> = {
        let (fields, missing, file, names) = (&fields, &missing, &file, names.len());
        std::thread::scope(|scope| {
            let handles: Vec<_> = cuts
                .windows(2)
                .map(|w| {
                    let (start, end) = (w[0], w[1]);
                    scope.spawn(move || parse(file, start, end, delimiter, names, fields, missing, shape, estimate))
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok().flatten()).collect::<Option<Vec<_>>>()
        })?
    };
    let rows: usize = pieces.iter().map(|p| p.rows).sum();
    if rows == 0 {
        return None;
    }
    let mut pieces = pieces.into_iter();
    let first = pieces.next()?;
    let mut first_row = first.rows;
    let (mut block, mut ids, mut classes, mut values) = (first.block, first.ids, first.classes, first.values);
    let mut missing_rows = first.missing;
    // Growing the first piece's buffers remaps their pages rather than copying them.
    block.reserve_exact(rows * width - block.len());
    for piece in pieces {
        block.extend_from_slice(&piece.block);
        ids.extend_from_slice(&piece.ids);
        classes.extend_from_slice(&piece.classes);
        values.extend_from_slice(&piece.values);
        for (c, local) in piece.missing.into_iter().enumerate() {
            missing_rows[c].extend(local.into_iter().map(|r| r + first_row));
        }
        first_row += piece.rows;
    }
    let mut numeric = NumericBlock { values: block, width, columns };
    finish_stats(&mut numeric, &missing_rows);
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

/// Rows a piece of `bytes` holds, judged from the lines at the start of the body, with room to
/// spare so the columns rarely grow.
fn estimate_rows(sample: &[u8], bytes: usize, pieces: usize) -> usize {
    let lines = memchr::memchr_iter(b'\n', sample).count().max(1);
    let per_line = (sample.len() / lines).max(1);
    (bytes / per_line / pieces) * 9 / 8 + 16
}

/// Reads `file[start..end]`, a run of whole lines, in blocks. Lines cut by a block's end carry
/// over to the next block; bytes past the last whole line pad the vectorised number scan.
#[allow(clippy::too_many_arguments)]
fn parse(
    file: &File,
    start: usize,
    end: usize,
    delimiter: u8,
    names: usize,
    fields: &[(usize, Field)],
    missing: &[&[u8]],
    shape: Shape,
    estimate: usize,
) -> Option<Piece> {
    let mut piece = Piece {
        rows: 0,
        block: Vec::with_capacity(estimate * shape.width),
        ids: Vec::with_capacity(estimate * shape.categorical),
        classes: Vec::with_capacity(if shape.labelled { estimate } else { 0 }),
        values: Vec::new(),
        missing: vec![Vec::new(); shape.width],
        shape,
    };
    let row = Row {
        delimiter,
        names,
        fields,
        missing,
        shape,
        // A missing marker that reads as a number ("-1") must not be taken for one.
        numbers_may_be_missing: missing.iter().any(|m| parse_f32(m).is_some()),
        simd: simd::available(),
    };
    let mut buffer = vec![0u8; BLOCK + PAD];
    let mut filled = 0;
    let mut at = start;
    while at < end || filled > 0 {
        let n = (BLOCK - filled).min(end - at);
        file.read_exact_at(&mut buffer[filled..filled + n], at as u64).ok()?;
        at += n;
        let mut len = filled + n;
        if memchr(b'"', &buffer[filled..len]).is_some() {
            return None;
        }
        let whole = if at < end {
            // A line longer than a block is left to the careful reader.
            memchr::memrchr(b'\n', &buffer[..len])? + 1
        } else {
            if buffer[len - 1] != b'\n' {
                buffer[len] = b'\n';
                len += 1;
            }
            len
        };
        if row.simd {
            // SAFETY: the processor has what `simd::rows` needs (`simd::available()`).
            unsafe { simd::rows(&row, &buffer, whole, &mut piece)? };
        } else {
            row.rows(&buffer, whole, &mut piece)?;
        }
        buffer.copy_within(whole..len, 0);
        filled = len - whole;
    }
    Some(piece)
}

/// How the rows of one file are read.
struct Row<'a, 'p> {
    delimiter: u8,
    names: usize,
    fields: &'a [(usize, Field<'p>)],
    missing: &'a [&'a [u8]],
    shape: Shape,
    numbers_may_be_missing: bool,
    simd: bool,
}

impl Row<'_, '_> {
    /// Reads the lines in `buffer[..whole]` into `piece`.
    #[inline(always)]
    fn rows(&self, buffer: &[u8], whole: usize, piece: &mut Piece) -> Option<()> {
        let mut pos = 0;
        while pos < whole {
            pos = self.parse(buffer, pos, piece)?;
        }
        Some(())
    }

    /// Reads the line at `buffer[pos..]` into a new row of `piece`; where the next line starts.
    /// `None` for an empty line, a wrong number of fields or a field the fast way cannot read.
    #[inline(always)]
    fn parse(&self, buffer: &[u8], mut pos: usize, piece: &mut Piece) -> Option<usize> {
        if matches!(buffer.get(pos)?, b'\n' | b'\r') {
            return None;
        }
        let row = piece.rows;
        let Shape { width, categorical, labelled } = self.shape;
        piece.block.resize((row + 1) * width, 0.0);
        piece.ids.resize((row + 1) * categorical, 0);
        if labelled {
            piece.classes.resize(row + 1, 0);
        }
        let mut next = 0;
        for i in 0..self.names {
            let last = i + 1 == self.names;
            // A plain number where a numeric field is wanted is read in one pass, its end included.
            if let Some((index, Field::Numeric { at, .. })) = self.fields.get(next) {
                if *index == i && !self.numbers_may_be_missing {
                    // A number followed by anything but the field's end ("1 ,") takes the general way.
                    if let Some((x, end, after)) =
                        self.number(buffer, pos).and_then(|(x, end)| Some((x, end, self.field_end(buffer, end, last)?)))
                    {
                        *piece.block.get_mut(row * width + at)? = x;
                        next += 1;
                        if next < self.fields.len() && self.fields[next].0 == i {
                            // The same data column read twice: the general way for the rest.
                            read_field(trim(&buffer[pos..end]), &self.fields[next].1, row, self.missing, piece)?;
                            next += 1;
                        }
                        pos = after;
                        continue;
                    }
                }
            }
            // Fields are short: a plain scan beats a vectorised search here.
            let mut to = pos;
            while !matches!(buffer.get(to)?, b'\n') && buffer[to] != self.delimiter {
                to += 1;
            }
            let after = self.field_end(buffer, to, last)?;
            let raw = if last { trim_cr(&buffer[pos..to]) } else { &buffer[pos..to] };
            while next < self.fields.len() && self.fields[next].0 == i {
                read_field(trim(raw), &self.fields[next].1, row, self.missing, piece)?;
                next += 1;
            }
            pos = after;
        }
        piece.rows += 1;
        Some(pos)
    }

    /// A number at `buffer[pos..]` and where it ends.
    #[inline(always)]
    fn number(&self, buffer: &[u8], pos: usize) -> Option<(f32, usize)> {
        if self.simd {
            // SAFETY: `simd` is what `simd::available()` said.
            if let Some(found) = unsafe { simd::scan(buffer, pos) } {
                return Some(found);
            }
        }
        scan_number(buffer, pos)
    }

    /// Where the next field starts when this one ends at `buffer[end]`: after a delimiter, or
    /// for the last field after the line's end. `None` for too few or too many fields.
    #[inline]
    fn field_end(&self, buffer: &[u8], end: usize, last: bool) -> Option<usize> {
        match (buffer.get(end)?, last) {
            (&b, false) if b == self.delimiter => Some(end + 1),
            (b'\n', true) => Some(end + 1),
            (b'\r', true) if buffer.get(end + 1) == Some(&b'\n') => Some(end + 2),
            _ => None,
        }
    }
}
fn read_field(raw: &[u8], field: &Field, row: usize, missing: &[&[u8]], piece: &mut Piece) -> Option<()> {
    let is_missing = missing.contains(&raw);
    match field {
        Field::Numeric { at, default } => {
            let x = if is_missing {
                piece.missing[*at].push(row);
                (*default)?
            } else {
                let x = parse_f32(raw).or_else(|| std::str::from_utf8(raw).ok()?.parse::<f32>().ok())?;
                x.is_finite().then_some(x)?
            };
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
                    let c = std::str::from_utf8(raw).ok()?.parse::<i64>().ok()?;
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
            piece.values.resize(row + 1, 0.0);
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

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A decimal like `-12.5`, `0.1234567` or `3e-2` as the nearest f32, when that can be known
/// cheaply; `None` sends the text to the standard parser. The value is computed in f64 (exact
/// for the mantissa, one rounding for the power of ten) and narrowed to f32 only when no f32
/// rounding boundary lies within the f64 result's half-ulp, so it equals `str::parse::<f32>`.
pub fn parse_f32(text: &[u8]) -> Option<f32> {
    let (value, end) = scan_number(text, 0)?;
    (end == text.len()).then_some(value)
}

/// `±mantissa × 10^exponent` as the nearest f32, when that can be known cheaply; `None` sends
/// the text to the standard parser. With at most 15 digits and |exponent| ≤ 22 both operands
/// are exact in f64, so one IEEE operation gives the f64 nearest the exact value; narrowing that
/// to f32 rounds correctly unless it landed exactly on a midpoint between two f32s (f64 keeps 29
/// more bits), the one case left to the standard parser. No branch depends on the digits.
#[inline]
fn to_f32(negative: bool, mantissa: u64, exponent: i32) -> Option<f32> {
    if mantissa >= 1_000_000_000_000_000 || !(-22..=22).contains(&exponent) {
        return None;
    }
    let m = mantissa as i64 as f64;
    let r = if exponent >= 0 { m * POW10[exponent as usize] } else { m / POW10[(-exponent) as usize] };
    if r.to_bits() & 0x1FFF_FFFF == 0x1000_0000 {
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

    /// What `scan_number` gives for a plain decimal at `buffer[pos..]` (`-1.25`, `37`, `.5`:
    /// at most 15 digits, no exponent, no `+`); `None` for anything else, which the scalar scan
    /// then reads, as it does when fewer than 17 bytes from `pos` lie in `buffer`.
    ///
    /// # Safety
    /// `available()` returned true.
    #[inline]
    pub unsafe fn scan(buffer: &[u8], pos: usize) -> Option<(f32, usize)> {
        #[cfg(target_arch = "x86_64")]
        if pos + 17 <= buffer.len() {
            // SAFETY: the processor has SSE4.1 (the caller's promise); the load lies in `buffer`.
            return unsafe { scan_sse(buffer, pos) };
        }
        let _ = (buffer, pos);
        None
    }

    /// `Row::rows` compiled for SSE4.1, so that `scan_sse` inlines into it.
    ///
    /// # Safety
    /// `available()` returned true.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.1,popcnt")]
    pub unsafe fn rows(row: &super::Row, buffer: &[u8], whole: usize, piece: &mut super::Piece) -> Option<()> {
        row.rows(buffer, whole, piece)
    }

    /// # Safety
    /// Never called: `available()` is false here.
    #[cfg(not(target_arch = "x86_64"))]
    pub unsafe fn rows(row: &super::Row, buffer: &[u8], whole: usize, piece: &mut super::Piece) -> Option<()> {
        row.rows(buffer, whole, piece)
    }

    /// For a field `len` bytes long (digits and at most one point) with its point at `point`
    /// (16: none), the shuffle that right-aligns its digits in sixteen lanes, zeros in front.
    #[cfg(target_arch = "x86_64")]
    const SHUFFLES: [[[u8; 16]; 17]; 16] = {
        let mut table = [[[0x80u8; 16]; 17]; 16];
        let mut len = 0;
        while len < 16 {
            let mut point = 0;
            while point < 17 {
                let count = if point < len { len - 1 } else { len };
                let (mut src, mut k) = (0, 0);
                while src < len {
                    if src != point {
                        table[len][point][16 - count + k] = src as u8;
                        k += 1;
                    }
                    src += 1;
                }
                point += 1;
            }
            len += 1;
        }
        table
    };

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.1,popcnt")]
    #[inline]
    unsafe fn scan_sse(buffer: &[u8], pos: usize) -> Option<(f32, usize)> {
        use std::arch::x86_64::*;
        let negative = buffer[pos] == b'-';
        let start = pos + usize::from(negative);
        // SAFETY: `scan` checked that 16 bytes from `start` lie in `buffer`.
        let v = unsafe { _mm_loadu_si128(buffer.as_ptr().add(start).cast()) };
        let d = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        let digits = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)) as u32;
        let points = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8))) as u32;
        let other = !(digits | points) & 0xFFFF;
        if other == 0 {
            return None;
        }
        let len = other.trailing_zeros() as usize;
        let end = start + len;
        if matches!(buffer[end], b'e' | b'E') {
            return None;
        }
        let points = points & ((1 << len) - 1);
        let (point, fraction) = match points.count_ones() {
            0 => (16, 0),
            1 => {
                let k = points.trailing_zeros() as usize;
                (k, len - k - 1)
            }
            _ => return None,
        };
        if len - usize::from(point < 16) == 0 {
            return None;
        }
        // SAFETY: a 16-byte load from a 16-byte array.
        let order = unsafe { _mm_loadu_si128(SHUFFLES[len][point].as_ptr().cast()) };
        let aligned = _mm_shuffle_epi8(d, order);
        // Pairs, then fours, then eights of digits, each step one multiply-add.
        let pairs = _mm_maddubs_epi16(aligned, _mm_setr_epi8(10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1, 10, 1));
        let fours = _mm_madd_epi16(pairs, _mm_setr_epi16(100, 1, 100, 1, 100, 1, 100, 1));
        let fours = _mm_packus_epi32(fours, fours);
        let eights = _mm_madd_epi16(fours, _mm_setr_epi16(10_000, 1, 10_000, 1, 10_000, 1, 10_000, 1));
        let high = _mm_cvtsi128_si32(eights) as u32 as u64;
        let low = _mm_extract_epi32::<1>(eights) as u32 as u64;
        let x = super::to_f32(negative, high * 100_000_000 + low, -(fraction as i32))?;
        Some((x, end))
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
            for end in [",", "\n", "\r\n", "x"] {
                let buffer = format!("{field}{end}{}", "9".repeat(20));
                // SAFETY: checked above.
                if let Some(fast) = unsafe { super::simd::scan(buffer.as_bytes(), 0) } {
                    let slow = super::scan_number(buffer.as_bytes(), 0).unwrap();
                    assert_eq!((fast.0.to_bits(), fast.1), (slow.0.to_bits(), slow.1), "{buffer}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 350_000, "the vectorised scan took only {checked}");
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
