//! Each numeric column's count, mean, standard deviation, minimum and maximum, over the values
//! a file had. Sums run over fixed groups of rows whose partial sums are added in order, so
//! both readers, on any number of cores, give the same bits.

use super::{cores, NumericBlock, Stats};

/// Each column's statistics over the values the file had (rows in `missing[c]` excluded). Sums
/// run over fixed blocks of rows, in parallel, and the blocks' partial sums are added in order,
/// so both ways of reading a file, on any number of cores, give the same bits.
pub(crate) fn finish_stats(block: &mut NumericBlock, missing: &[Vec<usize>]) {
    let width = block.width;
    if width == 0 || block.values.is_empty() {
        return;
    }
    let rows = block.values.len() / width;
    // Which columns each element belongs to, and a bitmap of missing rows for the few columns that have any.
    let owner: Vec<usize> = (0..width)
        .map(|j| block.columns.iter().position(|c| (c.offset..c.offset + c.shape).contains(&j)).unwrap_or(0))
        .collect();
    let gaps: Vec<Option<Vec<u64>>> = missing
        .iter()
        .map(|rows_missing| {
            (!rows_missing.is_empty()).then(|| {
                let mut bits = vec![0u64; rows.div_ceil(64)];
                for &r in rows_missing {
                    bits[r / 64] |= 1 << (r % 64);
                }
                bits
            })
        })
        .collect();
    let blocks: Vec<(usize, usize)> =
        (0..rows).step_by(STATS_ROWS).map(|start| (start, (start + STATS_ROWS).min(rows))).collect();
    let complete = gaps.iter().all(Option::is_none);
    let partial = |&(start, end): &(usize, usize)| -> Vec<Acc> {
        if complete {
            return dense_partial(&block.values[start * width..end * width], width);
        }
        let mut acc = vec![Acc::default(); width];
        for r in start..end {
            let row = &block.values[r * width..(r + 1) * width];
            for (j, (&x, a)) in row.iter().zip(acc.iter_mut()).enumerate() {
                if let Some(bits) = &gaps[owner[j]] {
                    if bits[r / 64] & (1 << (r % 64)) != 0 {
                        continue;
                    }
                }
                a.add(x as f64);
            }
        }
        acc
    };
    let threads = cores().clamp(1, 8);
    let per = blocks.len().div_ceil(threads);
    let partials: Vec<Vec<Acc>> = std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .chunks(per.max(1))
            .map(|chunk| scope.spawn(|| chunk.iter().map(partial).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    merge_stats(block, &partials);
}

/// Rows summed together before the sums are added up, in `finish_stats` and its parts.
pub(crate) const STATS_ROWS: usize = 1 << 14;

/// Each column's statistics from the partial ones of its row groups, in order.
pub(crate) fn merge_stats(block: &mut NumericBlock, partials: &[Vec<Acc>]) {
    for column in &mut block.columns {
        let mut total = Acc::default();
        for p in partials {
            for a in &p[column.offset..column.offset + column.shape] {
                total.merge(a);
            }
        }
        column.stats = total.stats();
        column.totals = total;
    }
}

/// The statistics of two tables' values together: their sums added, in order.
pub(crate) fn merged(a: &Acc, b: &Acc) -> Acc {
    let mut total = *a;
    total.merge(b);
    total
}

/// Statistics of a block with no missing values, every column added in row order as `Acc::add`
/// does, with one array per statistic so the columns of a row are added side by side (SIMD).
pub(crate) fn dense_partial(values: &[f32], width: usize) -> Vec<Acc> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor has AVX-512F.
        return unsafe { dense_partial_avx512(values, width) };
    }
    dense_partial_here(values, width)
}

/// `dense_partial` with eight columns a step. The lanes are columns, each added as before, so
/// the sums are the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dense_partial_avx512(values: &[f32], width: usize) -> Vec<Acc> {
    dense_partial_here(values, width)
}

#[inline(always)]
fn dense_partial_here(values: &[f32], width: usize) -> Vec<Acc> {
    let (mut sum, mut sum_sq) = (vec![0.0f64; width], vec![0.0f64; width]);
    let (mut min, mut max) = (vec![f64::INFINITY; width], vec![f64::NEG_INFINITY; width]);
    for row in values.chunks_exact(width) {
        let columns = sum.iter_mut().zip(sum_sq.iter_mut()).zip(min.iter_mut().zip(max.iter_mut()));
        for (&x, ((s, q), (lo, hi))) in row.iter().zip(columns) {
            let x = f64::from(x);
            *s += x;
            *q += x * x;
            *lo = if x < *lo { x } else { *lo };
            *hi = if x > *hi { x } else { *hi };
        }
    }
    let count = (values.len() / width) as u64;
    (0..width).map(|j| Acc { count, sum: sum[j], sum_sq: sum_sq[j], min: min[j], max: max[j] }).collect()
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Acc {
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) sum_sq: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Acc { count: 0, sum: 0.0, sum_sq: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl Acc {
    #[inline]
    fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        self.sum_sq += x * x;
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub(crate) fn stats(&self) -> Stats {
        if self.count == 0 {
            return Stats::default();
        }
        let mean = self.sum / self.count as f64;
        let std = (self.sum_sq / self.count as f64 - mean * mean).max(0.0).sqrt();
        Stats { count: self.count, mean, std, min: self.min, max: self.max }
    }
}
