//! The fast way through a clean CSV file: no quotes, one value per field, every row good. The
//! file is cut into one piece per core at line boundaries; each piece is read in large blocks
//! and parsed straight into the rows it owns. Anything unusual (a quote, an empty line, a field
//! that does not parse) returns `None`, and the careful reader, which names file, line and
//! column, reads the file instead. Both produce the same table, bit for bit.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use camino::Utf8Path;

use super::{finish_stats, IdColumn, Labels, NumericBlock, NumericColumn, Purpose, Stats, Table};
use crate::plan::{CategoricalIds, FeatureKind, HeadKind, Plan};

const BLOCK: usize = 1 << 20;

/// How one needed field is read.
enum Field<'p> {
    Numeric { at: usize, default: Option<f32> },
    Categorical { at: usize, ids: &'p CategoricalIds, vocabulary: HashMap<&'p [u8], i64> },
    Class { vocabulary: Option<HashMap<&'p [u8], i64>>, n_classes: i64 },
    Value,
}

/// What one piece of the file produced.
#[derive(Default)]
struct Piece {
    missing: Vec<Vec<usize>>,
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
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
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

    // First pass: lines per piece, so each piece knows which rows it writes.
    let counts: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = cuts.windows(2).map(|w| scope.spawn(|| count_lines(&file, w[0], w[1]))).collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect::<Option<Vec<_>>>()
    })?;
    let rows: usize = counts.iter().sum();
    if rows == 0 {
        return None;
    }

    let mut block = vec![0f32; rows * width];
    let mut ids = vec![0i64; rows * categorical.len()];
    let mut classes = vec![0i64; if purpose == Purpose::Labelled { rows } else { 0 }];
    let mut values = vec![0f32; if purpose == Purpose::Labelled { rows } else { 0 }];
    let pieces: Vec<Piece> = {
        let mut block_parts = split_rows(&mut block, &counts, width);
        let mut id_parts = split_rows(&mut ids, &counts, categorical.len());
        let labelled = usize::from(purpose == Purpose::Labelled);
        let mut class_parts = split_rows(&mut classes, &counts, labelled);
        let mut value_parts = split_rows(&mut values, &counts, labelled);
        let (fields, missing, file, names) = (&fields, &missing, &file, names.len());
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (p, w) in cuts.windows(2).enumerate() {
                let out = Out {
                    rows: counts[p],
                    block: block_parts.remove(0),
                    ids: id_parts.remove(0),
                    classes: class_parts.remove(0),
                    values: value_parts.remove(0),
                    width,
                    categorical: categorical.len(),
                    first_row: counts[..p].iter().sum(),
                };
                let (start, end) = (w[0], w[1]);
                handles.push(scope.spawn(move || parse(file, start, end, delimiter, names, fields, missing, out)));
            }
            handles.into_iter().map(|h| h.join().ok().flatten()).collect::<Option<Vec<_>>>()
        })?
    };
    let mut missing_rows = vec![Vec::new(); width];
    for piece in pieces {
        for (c, rows) in piece.missing.into_iter().enumerate() {
            missing_rows[c].extend(rows);
        }
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

/// Cuts a row-major buffer into the rows of each piece.
fn split_rows<'a, T>(buffer: &'a mut [T], counts: &[usize], width: usize) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(counts.len());
    let mut rest = buffer;
    for &n in counts {
        let (head, tail) = rest.split_at_mut(n * width);
        out.push(head);
        rest = tail;
    }
    out
}

struct Out<'a> {
    /// Rows this piece owns.
    rows: usize,
    block: &'a mut [f32],
    ids: &'a mut [i64],
    classes: &'a mut [i64],
    values: &'a mut [f32],
    width: usize,
    categorical: usize,
    first_row: usize,
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

/// Lines in `start..end`; `None` if the piece holds a quote or an empty line.
fn count_lines(file: &File, start: usize, end: usize) -> Option<usize> {
    let mut buffer = vec![0u8; BLOCK];
    let mut lines = 0;
    let mut at = start;
    // Where the current line started, counted from `start`: an empty line is a newline there.
    let mut line_start = 0usize;
    while at < end {
        let n = BLOCK.min(end - at);
        file.read_exact_at(&mut buffer[..n], at as u64).ok()?;
        let chunk = &buffer[..n];
        if memchr::memchr(b'"', chunk).is_some() {
            return None;
        }
        let base = at - start;
        for i in memchr::memchr_iter(b'\n', chunk) {
            let end_of_line = base + i;
            let empty = end_of_line == line_start
                || (end_of_line == line_start + 1 && chunk.get(i.wrapping_sub(1)) == Some(&b'\r'));
            if empty {
                return None;
            }
            lines += 1;
            line_start = end_of_line + 1;
        }
        at += n;
    }
    if line_start < end - start {
        lines += 1;
    }
    Some(lines)
}

#[allow(clippy::too_many_arguments)]
fn parse(
    file: &File,
    start: usize,
    end: usize,
    delimiter: u8,
    names: usize,
    fields: &[(usize, Field)],
    missing: &[&[u8]],
    mut out: Out,
) -> Option<Piece> {
    let mut piece = Piece { missing: vec![Vec::new(); out.width] };
    let mut buffer = vec![0u8; BLOCK];
    let mut carry: Vec<u8> = Vec::new();
    let mut row = 0;
    let mut at = start;
    while at < end {
        let n = BLOCK.min(end - at);
        file.read_exact_at(&mut buffer[..n], at as u64).ok()?;
        at += n;
        let mut chunk: &[u8] = &buffer[..n];
        // A line cut by the block boundary is finished from the carry.
        if !carry.is_empty() {
            let cut = memchr(b'\n', chunk).unwrap_or(chunk.len());
            carry.extend_from_slice(&chunk[..cut]);
            if cut == chunk.len() && at < end {
                continue;
            }
            let line = std::mem::take(&mut carry);
            row = parse_line(trim_cr(&line), row, delimiter, names, fields, missing, &mut out, &mut piece)?;
            chunk = if cut < chunk.len() { &chunk[cut + 1..] } else { &[] };
        }
        while let Some(cut) = memchr(b'\n', chunk) {
            row = parse_line(trim_cr(&chunk[..cut]), row, delimiter, names, fields, missing, &mut out, &mut piece)?;
            chunk = &chunk[cut + 1..];
        }
        carry.extend_from_slice(chunk);
    }
    if !carry.is_empty() {
        row = parse_line(trim_cr(&carry), row, delimiter, names, fields, missing, &mut out, &mut piece)?;
    }
    (row == out.rows).then_some(piece)
}

#[allow(clippy::too_many_arguments)]
fn parse_line(
    line: &[u8],
    row: usize,
    delimiter: u8,
    names: usize,
    fields: &[(usize, Field)],
    missing: &[&[u8]],
    out: &mut Out,
    piece: &mut Piece,
) -> Option<usize> {
    // A missing marker that reads as a number ("-1") must not be taken for one.
    let numeric_missing = missing.iter().any(|m| parse_f32(m).is_some());
    if row >= out.rows {
        return None;
    }
    let mut from = 0;
    let mut next = 0;
    for i in 0..names {
        // A plain number where a numeric field is wanted is read in one pass, delimiter included.
        if let Some((index, Field::Numeric { at, .. })) = fields.get(next) {
            if *index == i && !numeric_missing {
                if let Some((x, end)) = scan_number(line, from, delimiter) {
                    if (end == line.len()) != (i + 1 == names) {
                        return None;
                    }
                    *out.block.get_mut(row * out.width + at)? = x;
                    next += 1;
                    if next < fields.len() && fields[next].0 == i {
                        // The same data column read twice: take the general way for the rest.
                        read_field(trim(&line[from..end]), &fields[next].1, row, missing, out, piece)?;
                        next += 1;
                    }
                    from = end + 1;
                    continue;
                }
            }
        }
        // Fields are short: a plain scan beats a vectorised search here.
        let mut to = from;
        while to < line.len() && line[to] != delimiter {
            to += 1;
        }
        if (to == line.len()) != (i + 1 == names) {
            // Too few fields, or one too many: a bad row the careful reader names.
            return None;
        }
        while next < fields.len() && fields[next].0 == i {
            read_field(trim(&line[from..to]), &fields[next].1, row, missing, out, piece)?;
            next += 1;
        }
        from = to + 1;
    }
    Some(row + 1)
}

fn read_field(
    raw: &[u8],
    field: &Field,
    row: usize,
    missing: &[&[u8]],
    out: &mut Out,
    piece: &mut Piece,
) -> Option<()> {
    let is_missing = missing.contains(&raw);
    match field {
        Field::Numeric { at, default } => {
            let x = if is_missing {
                piece.missing[*at].push(out.first_row + row);
                (*default)?
            } else {
                let x = parse_f32(raw).or_else(|| std::str::from_utf8(raw).ok()?.parse::<f32>().ok())?;
                x.is_finite().then_some(x)?
            };
            *out.block.get_mut(row * out.width + at)? = x;
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
            *out.ids.get_mut(row * out.categorical + at)? = id;
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
            *out.classes.get_mut(row)? = class;
        }
        Field::Value => {
            if is_missing || raw.is_empty() {
                return None;
            }
            let v = parse_f32(raw).or_else(|| std::str::from_utf8(raw).ok()?.parse::<f32>().ok())?;
            *out.values.get_mut(row)? = v.is_finite().then_some(v)?;
        }
    }
    Some(())
}

/// A number starting at `line[start]` and ending at a delimiter or the end of the line:
/// its value and where it ends. `None` when the field is anything else (spaces, a marker, text,
/// more than 15 significant digits), which the general way then reads. The digits are read
/// eight bytes at a time from the line itself, so a field's neighbours pad the window.
fn scan_number(line: &[u8], start: usize, delimiter: u8) -> Option<(f32, usize)> {
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
    if i < line.len() && line[i] != delimiter {
        return None;
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
    // The field alone: a delimiter that cannot occur in a number ends it.
    let (value, end) = scan_number(text, 0, b',')?;
    (end == text.len()).then_some(value)
}

/// `±mantissa × 10^exponent` as the nearest f32, when that can be known cheaply. Clinger's fast
/// path when both are exact in f32; otherwise in f64 (one rounding) narrowed to f32 only when
/// no f32 rounding boundary lies within an f64 ulp of the result. `None` sends the text to the
/// standard parser.
fn to_f32(negative: bool, mantissa: u64, exponent: i32) -> Option<f32> {
    let value = if mantissa == 0 {
        0.0f32
    } else if mantissa < 1 << 24 && (-10..=10).contains(&exponent) {
        // Both operands exact in f32, so one IEEE operation rounds once.
        if exponent >= 0 {
            mantissa as f32 * POW10_F32[exponent as usize]
        } else {
            mantissa as f32 / POW10_F32[(-exponent) as usize]
        }
    } else {
        // More than 15 significant digits could be inexact in f64.
        if mantissa >= 1_000_000_000_000_000 || !(-22..=22).contains(&exponent) {
            return None;
        }
        let m = mantissa as f64;
        let r = if exponent >= 0 { m * POW10[exponent as usize] } else { m / POW10[(-exponent) as usize] };
        let f = r as f32;
        let below = f64::from(f);
        let neighbour = if r >= below { f32::from_bits(f.to_bits() + 1) } else { f32::from_bits(f.to_bits() - 1) };
        let boundary = (below + f64::from(neighbour)) / 2.0;
        // The exact value is within half an f64 ulp of r; a whole ulp keeps a margin.
        let ulp = f64::from_bits(r.to_bits() + 1) - r;
        if (r - boundary).abs() <= ulp {
            return None;
        }
        f
    };
    Some(if negative { -value } else { value })
}

const POW10_F32: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

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
        assert_eq!(super::scan_number(b"-12.25,3", 0, b','), Some((-12.25, 6)));
        assert_eq!(super::scan_number(b"1,2", 2, b','), Some((2.0, 3)));
        assert_eq!(super::scan_number(b"1 ,2", 0, b','), None);
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
