//! The order training reads rows in: one permutation per epoch, seeded by the pipeline's seed and
//! the epoch number, read as one endless stream so batches run across epoch boundaries (as
//! `shuffle().repeat().batch()` does). Where the stream stands is part of every checkpoint, so a
//! resumed run reads exactly the rows it would have read.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// A position in the stream of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataOrder {
    /// Epochs begun.
    pub epoch: u64,
    /// Rows of this epoch's permutation already read.
    pub offset: u64,
}

impl DataOrder {
    /// Rows read since the start of training.
    pub fn rows_read(&self, rows: u64) -> u64 {
        self.epoch * rows + self.offset
    }
}

/// The rows of each batch: one shuffled permutation per epoch, batches running across epochs.
pub struct Batcher {
    rows: usize,
    seed: u64,
    shuffle: bool,
    order: DataOrder,
    permutation: Vec<i64>,
}

// Keeps data-order draws apart from other uses of the seed.
const STREAM: u64 = 0x6461_7461;

impl Batcher {
    /// Batches over `rows` rows, from where `order` says.
    pub fn new(rows: usize, seed: u64, shuffle: bool, order: DataOrder) -> Batcher {
        let mut batcher = Batcher { rows, seed, shuffle, order, permutation: Vec::new() };
        batcher.permute();
        batcher
    }

    fn permute(&mut self) {
        self.permutation = (0..self.rows as i64).collect();
        if self.shuffle {
            Rng::derived(self.seed, &[STREAM, self.order.epoch]).shuffle(&mut self.permutation);
        }
    }

    /// Where the next batch starts.
    pub fn order(&self) -> DataOrder {
        self.order
    }

    /// Fills `out` with the next `count` row indices.
    pub fn next(&mut self, count: usize, out: &mut Vec<i64>) {
        match self.next_batch(count) {
            Batch::Within { start, len, .. } => {
                out.clear();
                out.extend_from_slice(&self.permutation[start..start + len]);
            }
            Batch::Across(rows) => *out = rows,
        }
    }

    /// The next `count` rows: a slice of this epoch's permutation when they lie in one epoch
    /// (the common case, which needs no copy), else the row indices themselves.
    pub fn next_batch(&mut self, count: usize) -> Batch {
        if self.order.offset as usize >= self.rows {
            self.order.epoch += 1;
            self.order.offset = 0;
            self.permute();
        }
        let start = self.order.offset as usize;
        if start + count <= self.rows {
            self.order.offset += count as u64;
            return Batch::Within { epoch: self.order.epoch, start, len: count };
        }
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            if self.order.offset as usize >= self.rows {
                self.order.epoch += 1;
                self.order.offset = 0;
                self.permute();
            }
            let start = self.order.offset as usize;
            let take = (count - out.len()).min(self.rows - start);
            out.extend_from_slice(&self.permutation[start..start + take]);
            self.order.offset += take as u64;
        }
        Batch::Across(out)
    }

    /// This epoch's permutation of the rows.
    pub fn permutation(&self) -> &[i64] {
        &self.permutation
    }
}

/// Where a batch's rows are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Batch {
    /// `permutation()[start..start + len]` of epoch `epoch`.
    Within {
        /// The epoch.
        epoch: u64,
        /// The first row's place in the permutation.
        start: usize,
        /// The rows.
        len: usize,
    },
    /// Rows running across an epoch boundary.
    Across(Vec<i64>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(batcher: &mut Batcher, batches: usize, size: usize) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        (0..batches)
            .map(|_| {
                batcher.next(size, &mut out);
                out.clone()
            })
            .collect()
    }

    #[test]
    fn each_epoch_is_a_permutation_and_batches_cross_epochs() {
        let mut b = Batcher::new(10, 3, true, DataOrder::default());
        let batches = read(&mut b, 5, 4);
        let stream: Vec<i64> = batches.concat();
        let mut first: Vec<i64> = stream[..10].to_vec();
        first.sort();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_ne!(stream[..10], stream[10..20]);
        assert_eq!(b.order(), DataOrder { epoch: 1, offset: 10 });
    }

    #[test]
    fn a_resumed_batcher_continues_the_same_stream() {
        let mut whole = Batcher::new(7, 11, true, DataOrder::default());
        let all = read(&mut whole, 12, 3);
        let mut first = Batcher::new(7, 11, true, DataOrder::default());
        let mut head = read(&mut first, 5, 3);
        let mut second = Batcher::new(7, 11, true, first.order());
        head.extend(read(&mut second, 7, 3));
        assert_eq!(head, all);
    }

    #[test]
    fn without_shuffle_rows_come_in_file_order() {
        let mut b = Batcher::new(5, 0, false, DataOrder::default());
        assert_eq!(read(&mut b, 2, 4), vec![vec![0, 1, 2, 3], vec![4, 0, 1, 2]]);
    }
}
