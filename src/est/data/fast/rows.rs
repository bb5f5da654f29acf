//! How the fast reader reads one line: each column's step (skip it, a number the quick way, or
//! the general way), the field separators found 64 bytes at a time, and the values written
//! straight into the block's part of the table. The vectorised kernels come in through the
//! processor tokens; without them every step is portable.

use std::collections::HashMap;

use super::avx512::Avx512;
use super::kernel::Lines;
use super::number::parse_f32;
use super::sse41::Sse41;
use super::Isa;
use crate::pipeline::CategoricalIds;

/// How one needed field is read.
pub enum Field<'p> {
    /// A number, written to column `at` of the numeric block.
    Numeric { at: usize, default: Option<f32> },
    /// A categorical value's id, written to column `at` of the ids.
    Categorical { at: usize, ids: &'p CategoricalIds, vocabulary: HashMap<&'p [u8], i64> },
    /// The class label.
    Class { vocabulary: Option<HashMap<&'p [u8], i64>>, n_classes: i64 },
    /// The regression label.
    Value,
}

/// Where the rows of one block go: its slices of the shared columns.
pub struct Piece<'o> {
    /// Rows read so far.
    pub rows: usize,
    /// The table row of the block's first row.
    pub first: usize,
    pub block: &'o mut [f32],
    pub ids: &'o mut [i64],
    pub classes: &'o mut [i64],
    pub values: &'o mut [f32],
    /// Per numeric column, the table rows that held a missing marker.
    pub missing: &'o mut [Vec<usize>],
    pub shape: Shape,
}

/// How many values of each kind a row holds.
#[derive(Clone, Copy)]
pub struct Shape {
    /// Numeric values.
    pub width: usize,
    /// Categorical ids.
    pub categorical: usize,
}

/// A line without the CR of a CRLF ending.
pub fn trim_cr(line: &[u8]) -> &[u8] {
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

/// How the rows of one file are read.
pub struct Row<'a, 'p> {
    delimiter: u8,
    /// What to do with each column of a line.
    steps: Vec<Step>,
    fields: &'a [(usize, Field<'p>)],
    missing: &'a [&'a [u8]],
    pub shape: Shape,
    /// The columns in order, numeric ones eight or four at a time where the processor can.
    ops: Vec<Op>,
    /// The kernels the processor has, as far as the reader may use them.
    pub sse41: Option<Sse41>,
    pub avx512: Option<Avx512>,
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
    /// How to read lines of `names` columns, the needed ones `fields` (sorted by column),
    /// with no kernel beyond `isa`.
    pub fn new(
        names: usize,
        delimiter: u8,
        fields: &'a [(usize, Field<'p>)],
        missing: &'a [&'a [u8]],
        shape: Shape,
        isa: Isa,
    ) -> Self {
        let sse41 = Sse41::detect().filter(|_| isa >= Isa::Sse41);
        let avx512 = Avx512::detect().filter(|_| isa >= Isa::Avx512);
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
        let mut ops = Vec::new();
        let mut i = 0;
        while i < steps.len() {
            let at = |k: usize| match steps.get(k) {
                Some(Step::Number { at, .. }) => Some(*at),
                _ => None,
            };
            let run = (i..steps.len()).take(8).take_while(|&k| at(k).is_some()).count();
            if avx512.is_some() && run >= 4 {
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
        Row { delimiter, steps, fields, missing, shape, ops, sse41, avx512 }
    }

    /// The columns a line has.
    pub fn names(&self) -> usize {
        self.steps.len()
    }

    /// Reads `lines` lines from `buffer[pos..]` into `piece`; where the next line starts.
    /// `buffer` holds at least `PAD` bytes past the last line.
    #[inline(always)]
    pub fn rows(&self, buffer: &[u8], mut pos: usize, lines: usize, piece: &mut Piece) -> Option<usize> {
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
                    if self.avx512.is_some_and(|avx| avx.eight(buffer, ends, self.delimiter, &mut values)) {
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
        if let Some(sse) = self.sse41 {
            return sse.number(buffer, start, end);
        }
        parse_f32(buffer.get(start..end)?)
    }
}

impl Lines for Row<'_, '_> {
    type Piece<'o> = Piece<'o>;

    #[inline(always)]
    fn rows(&self, buffer: &[u8], pos: usize, lines: usize, piece: &mut Piece<'_>) -> Option<usize> {
        Row::rows(self, buffer, pos, lines, piece)
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
    match buffer.get(from..).and_then(<[u8]>::first_chunk::<64>) {
        Some(chunk) => super::sse2::separators(chunk, delimiter),
        None => super::sse2::portable(buffer.get(from..).unwrap_or_default(), delimiter),
    }
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
    parse_f32(raw)
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
                // Most fields are ASCII, which is UTF-8: checked a word at a time, without the
                // general check's call per field (7% of a Criteo-shaped parse).
                let value = match raw.is_ascii() {
                    // SAFETY: ASCII bytes are valid UTF-8.
                    true => unsafe { std::str::from_utf8_unchecked(raw) },
                    false => std::str::from_utf8(raw).ok()?,
                };
                match ids {
                    CategoricalIds::Vocabulary { oov_buckets, .. } => match vocabulary.get(raw) {
                        Some(id) => *id,
                        None if *oov_buckets > 0 => {
                            vocabulary.len() as i64 + crate::data::hash::bucket(value, *oov_buckets)
                        }
                        None => return None,
                    },
                    CategoricalIds::Hash { hash_buckets } => crate::data::hash::bucket(value, *hash_buckets),
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
            *piece.values.get_mut(row)? = parse_f32(raw)?;
        }
    }
    Some(())
}
