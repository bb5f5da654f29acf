//! est: declarative model training. A `.est` pipeline is compiled in stages, each a plain value:
//!
//! ```text
//! .est text ──spec::parse──▶ Ast ──check::check──▶ CheckedSpec ──plan::plan──▶ Plan (serde, fingerprint)
//!                                                                       │
//!                               lower::build (tch) ◀─────────────────────┘
//!                                      │
//!                      train::run ──▶ checkpoint::store, events::writer ──▶ model_dir/
//! ```
//!
//! The front half (spec, check, plan) never touches libtorch, so `est check` and `est compile`
//! answer in milliseconds and build without it.

pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod diagnostic;
pub mod diff;
pub mod events;
#[cfg(feature = "torch")]
pub mod lower;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod report;
pub mod rng;
pub mod span;
pub mod spec;
pub mod suggestion;
#[cfg(feature = "torch")]
pub mod train;
pub mod watch;

pub use pipeline::{compile, Compiled, LoadError, Source};
