//! `est-torch`: the `est` command line with the training commands run here, on libtorch. `est`
//! hands `train`, `evaluate`, `predict` and `watch` over to it.

fn main() {
    // Past a file-size limit a write should fail with an error est can report, not kill the
    // process halfway through a save.
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        let first = message.lines().next().unwrap_or(message);
        eprintln!("error: internal error in est: {first}\nThis is a bug in est; please report it with the .est file.");
    }));
    std::process::exit(est::cli::run(&est_torch::cli::Torch));
}
