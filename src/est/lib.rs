//! est: declarative model training. A `.est` pipeline is compiled in stages, each a plain value:
//!
//! ```text
//! .est text ──spec::parse──▶ Ast ──check::check──▶ CheckedSpec ──plan::plan──▶ Plan (serde, fingerprint)
//!                                                                       │
//!                   est-torch: lower::build (tch) ◀──────────────────────┘
//!                                      │
//!                      train::run ──▶ checkpoint::Store, events::EventWriter ──▶ model_dir/
//! ```
//!
//! This crate is everything that needs no libtorch: the language (spec, check, plan), the data
//! readers, the checkpoint format and store, event files, diffs, reports, watch mode's
//! classifier and the command line. The `est-torch` crate builds on it; this one cannot reach
//! libtorch, so `est check` answers in milliseconds.

pub mod check;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod diagnostic;
pub mod diff;
pub mod events;
pub mod export;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod report;
pub mod rng;
mod source;
pub mod span;
pub mod spec;
pub mod stopping;
pub mod suggestion;
pub mod watch;

use camino::Utf8Path;

pub use source::{LoadError, Source};

use crate::check::SpanMap;
use crate::diagnostic::Diagnostic;
use crate::plan::Plan;

/// A compiled pipeline, and where each of its keys was written.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The plan: what will be built and trained.
    pub plan: Plan,
    /// Where each checked key was written, for messages that point back into the file.
    pub spans: SpanMap,
}

/// The whole front half: parse, check, plan. `base_dir` anchors the file's relative paths.
pub fn compile(source: &Source, base_dir: &Utf8Path) -> Result<Compiled, Vec<Diagnostic>> {
    let ast = spec::parse(&source.text).map_err(|d| vec![d])?;
    let checked = check::check(&ast, base_dir)?;
    let file_name = source.path.file_name().unwrap_or(source.path.as_str());
    let plan = plan::plan(&checked, &base_dir.join(file_name));
    Ok(Compiled { plan, spans: checked.spans })
}
