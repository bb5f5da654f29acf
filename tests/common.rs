//! Helpers shared by the test modules.

use camino::{Utf8Path, Utf8PathBuf};

/// The repository root, where the workspace's Cargo.toml is (each crate's is two folders down).
pub fn root() -> Utf8PathBuf {
    let manifest = Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).map_or(manifest.clone(), Utf8Path::to_owned)
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

/// Snapshot settings that show paths relative to the repository root.
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
