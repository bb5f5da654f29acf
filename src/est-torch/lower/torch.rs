//! libtorch's results as est uses them: its errors shown by their first line, and in-place
//! operations whose returned alias nobody needs.

use tch::{TchError, Tensor};

/// A libtorch error. It shows its first line only: the C++ backtrace after it is for libtorch's
/// developers, not for est's users, and stays reachable as the source.
#[derive(Debug)]
pub struct TorchError(pub TchError);

impl std::fmt::Display for TorchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("unknown error");
        f.write_str(first.trim().trim_start_matches("Torch(\"").trim_end_matches("\")"))
    }
}

impl std::error::Error for TorchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<TchError> for TorchError {
    fn from(e: TchError) -> Self {
        TorchError(e)
    }
}

/// In-place tch operations return an alias of their receiver, which there is no need to keep.
pub trait Done {
    /// The operation's error, without the alias.
    fn done(self) -> Result<(), TchError>;
}

impl Done for Result<Tensor, TchError> {
    fn done(self) -> Result<(), TchError> {
        self.map(drop)
    }
}
