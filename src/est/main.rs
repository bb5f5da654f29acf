//! `est`: checks, compiles, diffs, inspects and reports itself, and hands training to
//! `est-torch`, installed beside it. Built from this crate alone, so it cannot link libtorch.

fn main() {
    std::process::exit(est::cli::main());
}
