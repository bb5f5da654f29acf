//! `est`: checks and compiles pipelines itself and hands training to `est-torch`.
//!
//! This binary compiles the front half's modules directly instead of linking the library, whose
//! training half would make every `est check` load libtorch (0.2 s and 110 MB before it can say
//! anything). The modules are the library's own files.

// The library's public items that only the training half uses are dead code here.
#![allow(dead_code)]

mod check;
mod checkpoint;
mod cli;
mod data;
mod diagnostic;
mod diff;
mod events;
mod pipeline;
mod plan;
mod render;
mod report;
mod rng;
mod span;
mod spec;
mod suggestion;

fn main() {
    std::process::exit(cli::main());
}
