//! Helpers for the libtorch tests: the shared ones, temp projects, the binaries.

// The front tests use the rest of it.
#[allow(dead_code)]
#[path = "../common.rs"]
mod shared;

pub use shared::*;

/// The `est` binary, which hands training to `est-torch` beside it. Cargo builds `est` for the
/// `est` crate's tests, so the workspace's tests (`cargo test --workspace`, scripts/test) have it.
pub fn est_bin() -> std::path::PathBuf {
    let torch = std::path::Path::new(env!("CARGO_BIN_EXE_est-torch"));
    let est = torch.with_file_name("est");
    assert!(est.exists(), "{} is not built: run the tests with `cargo test --workspace`", est.display());
    est
}

/// A temp folder holding `pipelines/<pipeline>`, with each `(old, new)` edit made (each `old`
/// must be there), and a copy of pipelines/data/.
pub fn project(pipeline: &str, edits: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in std::fs::read_dir(root().join("pipelines/data")).unwrap().flatten() {
        std::fs::copy(f.path(), data.join(f.file_name())).unwrap();
    }
    let mut text = read(&format!("pipelines/{pipeline}"));
    for (old, new) in edits {
        assert!(text.contains(old), "`{old}` is not in pipelines/{pipeline}");
        text = text.replace(old, new);
    }
    std::fs::write(tmp.path().join(pipeline), text).unwrap();
    tmp
}

/// libtorch's random generator is one per process: a test that seeds it and draws from it holds
/// this while it does.
pub fn torch_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `tests/reference/<script>` prints, run by the venv's Python with torch; `None` when
/// `EST_PYTHON` is not set, and the recorded output is checked instead.
pub fn torch_reference(script: &str) -> Option<String> {
    let python = std::env::var("EST_PYTHON").ok()?;
    let out = std::process::Command::new(python)
        .arg(root().join("tests/reference").join(script))
        .output()
        .expect("the reference script runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}
