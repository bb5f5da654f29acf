//! The loop a kernel set compiles for its processor's features: the fast reader's rows of one
//! block. A set's `rows` takes any `Lines`, so it needs no knowledge of how a row is read,
//! and what it calls inlines into a function built with those features.

/// A way of reading a block's lines.
pub trait Lines {
    /// Where the rows go.
    type Piece<'o>;
    /// Reads `lines` lines from `buffer[pos..]` into `piece`; where the next line starts.
    /// Implementations are `#[inline(always)]`, so they compile into the caller.
    fn rows(&self, buffer: &[u8], pos: usize, lines: usize, piece: &mut Self::Piece<'_>) -> Option<usize>;
}
