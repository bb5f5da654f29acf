//! est's libtorch half: a plan lowered to a model of named tensors (`lower`), and training,
//! evaluation and prediction on it (`train`), with watch mode's loop and the progress display.
//! Everything it reads and writes (plans, tables, checkpoints, event files) is defined in the
//! `est` crate, which knows nothing of libtorch.

pub mod cli;
pub mod console;
pub(crate) mod crew;
pub mod lower;
pub(crate) mod memory;
pub mod train;
pub mod watch;
