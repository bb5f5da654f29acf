//! A `.est` file as read from disk, and the folder its relative paths start from.

use camino::{Utf8Path, Utf8PathBuf};

use crate::check;

/// A `.est` file as read from disk.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path as the user gave it, for messages.
    pub path: Utf8PathBuf,
    /// Its contents.
    pub text: String,
}

/// A `.est` file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The system refused.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: Utf8PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The bytes are not text.
    #[error("`{path}` is not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: Utf8PathBuf,
    },
    /// The folder relative paths start from is unknown.
    #[error("cannot find the current directory: {0}")]
    CurrentDir(std::io::Error),
}

impl Source {
    /// Reads `path`.
    pub fn read(path: &Utf8Path) -> Result<Source, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: path.to_owned() })?;
        Ok(Source { path: path.to_owned(), text })
    }

    /// The file's folder as an absolute path: relative paths inside the file start there.
    pub fn base_dir(&self) -> Result<Utf8PathBuf, LoadError> {
        let parent = self.path.parent().unwrap_or(Utf8Path::new(""));
        if parent.is_absolute() {
            return Ok(check::resolve(parent, "."));
        }
        let cwd = std::env::current_dir().map_err(LoadError::CurrentDir)?;
        let cwd = Utf8PathBuf::from_path_buf(cwd)
            .map_err(|p| LoadError::NotUtf8 { path: Utf8PathBuf::from(p.to_string_lossy().into_owned()) })?;
        Ok(check::resolve(&cwd, parent.as_str()))
    }
}
