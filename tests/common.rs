//! Helpers shared by the test modules.

use camino::{Utf8Path, Utf8PathBuf};

/// The crate root, where Cargo.toml is.
pub fn root() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `text` as if it were the file at `path` (relative to the crate root).
pub fn compile_text(path: &str, text: &str) -> Result<est::Compiled, Vec<est::diagnostic::Diagnostic>> {
    let full = root().join(path);
    let source = est::Source { path: full.clone(), text: text.to_string() };
    let base = full.parent().map(Utf8Path::to_owned).unwrap_or_else(root);
    est::compile(&source, &base)
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Snapshot settings that show paths relative to the crate root.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(root().as_str()), "[ROOT]");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// A temp folder holding `pipelines/<pipeline>`, with each `(old, new)` edit made (each `old`
/// must be there), and a copy of pipelines/data/.
#[cfg(feature = "torch")]
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
#[cfg(feature = "torch")]
pub fn torch_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
