//! Writes that either happen whole or not at all: a temporary file in the same folder, fsync,
//! rename over the target, fsync of the folder.

use std::fs::{self, File};
use std::io::Write;

use camino::Utf8Path;

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never a
/// part: a temporary file beside it, fsync'd, renamed over it, and the folder fsync'd.
pub fn write(path: &Utf8Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |file| file.write_all(bytes))
}

/// As `write`, with the file's bytes written by `fill`; when it fails, the target is untouched
/// and no temporary file is left.
pub fn write_with<E: From<std::io::Error>>(
    path: &Utf8Path,
    fill: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    // A bare file name lives in the current folder.
    let dir = path.parent().filter(|p| !p.as_str().is_empty()).unwrap_or(Utf8Path::new("."));
    let name = path.file_name().unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        Ok(sync_dir(dir)?)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes renames and removals in `dir` durable.
pub fn sync_dir(dir: &Utf8Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
