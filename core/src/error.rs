//! Errors of the push and pull engines.
//!
//! Rules: every failing module has its own error type (`CodecError`, `RecipeError`,
//! `StoreError`); this one wraps them for the engines. Messages are lowercase, one clause,
//! and name the path, offset or block; causes stay available as `source()`. Nothing here
//! panics on bad input — a panic on input is a bug.

use crate::codec::CodecError;
use crate::id::ImageHash;
use crate::recipe::RecipeError;
use crate::store::StoreError;
use std::path::PathBuf;

/// Why a push or pull failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The recipe is unusable.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// A block failed verification.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The recipe was made under another convergence secret.
    #[error("recipe was made with a different convergence secret (fingerprint {recipe}, ours {ours}); use the --secret-file the image was pushed with")]
    WrongSecret {
        /// The recipe's fingerprint.
        recipe: String,
        /// Ours.
        ours: String,
    },
    /// Every block verified, yet the whole image does not: a bug or a disk fault.
    #[error("rebuilt image does not match the recipe (expected {expected}, got {got}); nothing was written to the output")]
    ImageMismatch {
        /// From the recipe.
        expected: ImageHash,
        /// What was rebuilt.
        got: ImageHash,
    },
    /// Options that cannot work together.
    #[error("{0}")]
    Invalid(String),
}

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, Error> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
