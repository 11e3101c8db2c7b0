//! Errors of the push and pull engines, and the classification the binary maps to exit
//! codes.
//!
//! Rules: every failing module has its own error type (`CodecError`, `RecipeError`,
//! `StoreError`); this one wraps them for the engines. Messages are lowercase, one clause,
//! and name the path, offset or block they are about (the image or output path, never a
//! manifest name); causes stay available as `source()`. Nothing here panics on bad input —
//! a panic on input is a bug. [`Error::kind`] sorts every failure into one of the
//! [`ErrorKind`]s a user acts on differently; the CLI turns each into its exit code.

use crate::chunk::ChunkerParamsError;
use crate::codec::CodecError;
use crate::id::{BlockId, ImageHash};
use crate::recipe::RecipeError;
use crate::store::{StoreError, StoreErrorKind};
use std::path::{Path, PathBuf};

/// What a user does about a failure; one exit code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request cannot work as given (bad option, existing output without force, a
    /// directory as output, an unusable recipe or secret): fix the command line or input.
    Usage,
    /// The store refused our credentials: fix the token.
    Auth,
    /// Something named does not exist (a block in the store).
    NotFound,
    /// Bytes did not verify (a block, a hole, the whole image, a cache entry): nothing
    /// was published; the data or a peer is at fault.
    Verification,
    /// The store could not be reached or answered out of protocol; a retry may work.
    Network,
    /// A local file or device could not be read or written.
    Io,
    /// The store refused for reasons of its own (a limit, a full disk, busy), or a failure
    /// of no class above (a bug).
    Other,
}

impl ErrorKind {
    /// The process exit code of this class (README, "Exit status"): the one table, used by
    /// `bonsai` and `bonsai-blockstore` alike.
    pub const fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Other => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Auth => 3,
            ErrorKind::NotFound => 4,
            ErrorKind::Verification => 5,
            ErrorKind::Network => 6,
            ErrorKind::Io => 7,
        }
    }

    /// The class of the first error in `err`'s chain that has one, from the outside in,
    /// so a context added on the way out never hides the cause's class. The one
    /// classification: the binary maps each kind to its exit code and nothing else.
    pub fn of_chain(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
        let mut at = Some(err);
        while let Some(e) = at {
            if let Some(kind) = ErrorKind::of(e) {
                return Some(kind);
            }
            at = e.source();
        }
        None
    }

    /// The class of `e` itself when it is one of core's error types (or an I/O error
    /// carrying one); `None` for anything else.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
        use crate::codec::{SecretFileError, SecretFileFault};
        use crate::image::ImageError;
        use crate::seal::SealError;
        if let Some(e) = e.downcast_ref::<Error>() {
            return Some(e.kind());
        }
        if let Some(e) = e.downcast_ref::<StoreError>() {
            return Some(store_kind(e));
        }
        if let Some(e) = e.downcast_ref::<RecipeError>() {
            return Some(recipe_kind(e));
        }
        if let Some(e) = e.downcast_ref::<ImageError>() {
            return Some(image_kind(e));
        }
        if let Some(e) = e.downcast_ref::<SealError>() {
            return Some(seal_kind(e));
        }
        if let Some(e) = e.downcast_ref::<SecretFileError>() {
            return Some(match &e.kind {
                SecretFileFault::Io(io) => io_kind(io),
                _ => ErrorKind::Usage,
            });
        }
        if e.is::<CodecError>() {
            return Some(ErrorKind::Verification);
        }
        e.downcast_ref::<std::io::Error>().map(io_kind)
    }
}

/// An I/O error is classified by the error it carries when it carries one of ours (an
/// image refusal travels through `Read` as an I/O error), else by its kind.
pub fn io_kind(e: &std::io::Error) -> ErrorKind {
    if let Some(kind) = e.get_ref().and_then(|inner| ErrorKind::of(inner)) {
        return kind;
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Io,
    }
}

/// A recipe that is not a recipe (or of a version we do not read) is refused input; a
/// damaged one failed its checks.
fn recipe_kind(e: &RecipeError) -> ErrorKind {
    match e {
        RecipeError::BadMagic | RecipeError::UnsupportedVersion(_) => ErrorKind::Usage,
        RecipeError::Io(io) => io_kind(io),
        _ => ErrorKind::Verification,
    }
}

/// An image refused for what it is (damaged, truncated, unsupported, naming files it may
/// not open, encrypted without a key, or a reader that is missing or refuses it) is
/// refused input: nothing was read into a store. Only I/O failures are classified by
/// their cause.
fn image_kind(e: &crate::image::ImageError) -> ErrorKind {
    match e {
        crate::image::ImageError::Io { source, .. } => io_kind(source),
        _ => ErrorKind::Usage,
    }
}

/// Key files are arguments; a sealed recipe that does not open with the key given fails
/// verification, as a wrong key cannot be told from damage.
fn seal_kind(e: &crate::seal::SealError) -> ErrorKind {
    use crate::seal::SealError as S;
    match e {
        S::KeyFile { source, .. } => io_kind(source),
        S::BadKey { .. } => ErrorKind::Usage,
        S::Encrypt(_) => ErrorKind::Other,
        S::Decrypt { .. } | S::Invalid { .. } => ErrorKind::Verification,
    }
}

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
    /// The image was refused for what it is, or could not be read (its message names
    /// the file).
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// The recipe is unusable.
    #[error("{}: {source}", path.display())]
    Recipe {
        /// The recipe file (or what the caller called it).
        path: PathBuf,
        /// Cause.
        #[source]
        source: RecipeError,
    },
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
    /// Chunker parameters that cannot cut an image.
    #[error("invalid chunker parameters: {0}")]
    Chunker(#[from] ChunkerParamsError),
    /// An output file exists and `force` was not given.
    #[error("{} exists; pass --force to replace it", path.display())]
    Exists {
        /// The output.
        path: PathBuf,
    },
    /// An output path names a directory.
    #[error("{} is a directory; name a file to write", path.display())]
    IsDirectory {
        /// The output.
        path: PathBuf,
    },
    /// A block device (or in-place target) is smaller than the image.
    #[error("{} holds {size} bytes, the image needs {needed}", path.display())]
    TargetTooSmall {
        /// The target.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The image's logical size.
        needed: u64,
    },
    /// A fetched block decoded to another length than its recipe entry declares.
    #[error("block {id} holds {got} bytes but the recipe says {expected}; the recipe is corrupt or crafted")]
    BlockLength {
        /// The block.
        id: BlockId,
        /// From the recipe.
        expected: u32,
        /// Decoded.
        got: usize,
    },
    /// Read back from the output, an extent is not the block the recipe names.
    #[error("{}: bytes at offset {offset} (+{len}) are not block {id}{hint}", path.display())]
    ExtentMismatch {
        /// The output (or its partial file).
        path: PathBuf,
        /// Where the extent starts.
        offset: u64,
        /// Its length.
        len: u64,
        /// The block the recipe puts there.
        id: BlockId,
        /// What the user can do.
        hint: Hint,
    },
    /// Read back from the output, a hole of the image holds non-zero bytes.
    #[error("{}: hole at offset {offset} holds non-zero bytes{hint}", path.display())]
    HoleNotZero {
        /// The output (or its partial file).
        path: PathBuf,
        /// The first non-zero byte found.
        offset: u64,
        /// What the user can do.
        hint: Hint,
    },
    /// Every extent verified, yet the whole-image hash (recipe v1) does not.
    #[error("{}: rebuilt image does not match the recipe (expected {expected}, got {got}){hint}", path.display())]
    ImageMismatch {
        /// The output (or its partial file).
        path: PathBuf,
        /// From the recipe.
        expected: ImageHash,
        /// What was rebuilt.
        got: ImageHash,
        /// What the user can do.
        hint: Hint,
    },
    /// The key cache gave an id that is not the block's: the entry is removed.
    #[error("the key cache at {} held a wrong id for block {id} (entry removed); run the push again", path.display())]
    WrongCacheEntry {
        /// The cache file.
        path: PathBuf,
        /// The wrong id.
        id: BlockId,
    },
    /// Options that cannot work together.
    #[error("{0}")]
    Conflict(&'static str),
    /// A failure with what it left behind (a partial file kept for a re-run, say).
    #[error("{error}{hint}")]
    Noted {
        /// The failure (shown in the message, so deliberately not a `source()`).
        error: Box<Error>,
        /// What was left and what a re-run does.
        hint: Hint,
    },
}

/// A sentence appended to a verification failure saying what a re-run does; empty when
/// there is nothing to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hint(pub String);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "; {}", self.0)
        }
    }
}

impl Error {
    /// The class of this failure, for exit codes (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } => io_kind(source),
            Error::Image(e) => image_kind(e),
            Error::Recipe { source, .. } => recipe_kind(source),
            Error::Codec(_)
            | Error::BlockLength { .. }
            | Error::ExtentMismatch { .. }
            | Error::HoleNotZero { .. }
            | Error::ImageMismatch { .. }
            | Error::WrongCacheEntry { .. } => ErrorKind::Verification,
            Error::Store(e) => store_kind(e),
            Error::WrongSecret { .. }
            | Error::Chunker(_)
            | Error::Exists { .. }
            | Error::IsDirectory { .. }
            | Error::TargetTooSmall { .. }
            | Error::Conflict(_) => ErrorKind::Usage,
            Error::Noted { error, .. } => error.kind(),
        }
    }

    /// Appends `text` to the message: in place for verification failures, which have a
    /// hint field (so callers can still match them), by wrapping in [`Error::Noted`]
    /// otherwise.
    pub(crate) fn with_hint(mut self, text: String) -> Self {
        match &mut self {
            Error::ExtentMismatch { hint, .. }
            | Error::HoleNotZero { hint, .. }
            | Error::ImageMismatch { hint, .. } => {
                *hint = Hint(text);
                self
            }
            _ => Error::Noted {
                error: Box::new(self),
                hint: Hint(text),
            },
        }
    }
}

/// Classifies a store failure by the store's own classification (never by its message).
fn store_kind(e: &StoreError) -> ErrorKind {
    match e.kind() {
        StoreErrorKind::Network | StoreErrorKind::Protocol => ErrorKind::Network,
        StoreErrorKind::Refused => ErrorKind::Other,
        StoreErrorKind::Auth => ErrorKind::Auth,
        StoreErrorKind::NotFound => ErrorKind::NotFound,
        StoreErrorKind::Rejected => ErrorKind::Verification,
        StoreErrorKind::Unsupported | StoreErrorKind::Misaddressed | StoreErrorKind::BadInput => {
            ErrorKind::Usage
        }
        StoreErrorKind::LocalIo => ErrorKind::Io,
    }
}

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    /// An I/O error carrying an image refusal (a reader's way of reporting one) becomes
    /// [`Error::Image`], whose message already names the file.
    fn at(self, path: &Path) -> Result<T, Error> {
        self.map_err(|source| {
            let carries_image = source
                .get_ref()
                .is_some_and(|e| e.is::<crate::image::ImageError>());
            if !carries_image {
                return Error::Io {
                    path: path.to_path_buf(),
                    source,
                };
            }
            let kind = source.kind();
            match source
                .into_inner()
                .map(|e| e.downcast::<crate::image::ImageError>())
            {
                Some(Ok(image)) => Error::Image(*image),
                Some(Err(other)) => Error::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(kind, other),
                },
                None => Error::Io {
                    path: path.to_path_buf(),
                    source: kind.into(),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_variants() {
        let p = PathBuf::from("/x");
        assert_eq!(Error::Exists { path: p.clone() }.kind(), ErrorKind::Usage);
        assert_eq!(
            Error::HoleNotZero {
                path: p.clone(),
                offset: 3,
                hint: Hint::default()
            }
            .kind(),
            ErrorKind::Verification
        );
        let e = Error::Store(StoreError::Unauthorized {
            store: "s".into(),
            reason: "r".into(),
        });
        assert_eq!(e.kind(), ErrorKind::Auth);
        let e = Error::Store(StoreError::NotFound(BlockId([0; 32])));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = Error::Io {
            path: p,
            source: std::io::Error::other("x"),
        };
        assert_eq!(e.kind(), ErrorKind::Io);
    }

    #[test]
    fn hint_is_appended_once() {
        let e = Error::HoleNotZero {
            path: PathBuf::from("/o"),
            offset: 9,
            hint: Hint::default(),
        }
        .with_hint("the partial file /p is kept".into());
        assert_eq!(
            e.to_string(),
            "/o: hole at offset 9 holds non-zero bytes; the partial file /p is kept"
        );
    }
}
