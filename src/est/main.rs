//! `est`: checks, compiles, diffs, inspects, reports and exports itself, and hands training to
//! `est-torch`, installed beside it. Built from this crate alone, so it cannot link libtorch.

fn main() {
    // Past a file-size limit a write should fail with an error est can report, not kill the
    // process halfway through an export.
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    std::process::exit(est::cli::main());
}
