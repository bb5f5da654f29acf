//! The `est` crate's integration tests: the language, the readers, the command line. None of
//! them loads libtorch; the training tests are in tests/torch/.

mod cli;
mod common;
mod compile;
mod data;
mod export;
mod fingerprint;
mod fuzz;
mod inputs;
