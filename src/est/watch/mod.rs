//! Watch mode's two halves that need no libtorch: what an edit means (a pure function of the
//! changed paths and the old and new plans) and the file watcher that reports edits. The loop
//! that trains lives with the training commands.

pub mod classify;
pub mod files;
