//! Why an image cannot be read: one variant per kind of refusal, each message one
//! lowercase line naming the file and saying what to do.

use std::path::PathBuf;

/// Why opening or reading an image failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The image's own bytes are inconsistent (tables past the end, bad entries, absurd
    /// sizes): reading it would give a wrong disk.
    #[error("{} is damaged: {problem}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, with offsets.
        problem: String,
    },
    /// The file is shorter than its own tables say: data the image maps lies past its
    /// end. qemu reads such data as zeros, so the disk would silently differ.
    #[error("{} is truncated: {detail}; the file was cut short", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where the missing data lies, with offsets.
        detail: String,
    },
    /// A container or feature bonsai does not read.
    #[error("{} is {what}, which bonsai does not read; {hint}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format or feature.
        what: String,
        /// What the user can do.
        hint: String,
    },
    /// The format was guessed from content, and the image names another file: a guest
    /// could have written that header, so the file is not opened unless the user says so.
    #[error("{} looks like {format} (guessed from its content) and names {kind} {name:?}; bonsai opens files an image names only when told: pass --format {format} or --follow-references", path.display())]
    GuessedReference {
        /// The image.
        path: PathBuf,
        /// The guessed format.
        format: super::ImageFormat,
        /// "backing file", "external data file", "extent file", "parent".
        kind: &'static str,
        /// The name as written in the image.
        name: String,
    },
    /// A chain of backing files comes back to a file already in it.
    #[error("backing chain of {} loops: {chain}", path.display())]
    Loop {
        /// The top image.
        path: PathBuf,
        /// The chain, `a -> b -> a`.
        chain: String,
    },
    /// An encrypted image and no secret to open it.
    #[error("{} is encrypted ({scheme}); pass --image-secret-file FILE holding its passphrase", path.display())]
    NeedsSecret {
        /// The image.
        path: PathBuf,
        /// "luks", "qcow2 luks", ...
        scheme: String,
    },
    /// qemu's block layer (the reader for this format) is missing or refused the image.
    #[error("{}: {message}", path.display())]
    Reader {
        /// The image.
        path: PathBuf,
        /// What qemu said, or how to install it.
        message: String,
    },
}

impl ImageError {
    /// An I/O error about `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ImageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// `path` cut short: `detail` says what lies past its end.
    pub fn truncated(path: &std::path::Path, detail: impl Into<String>) -> Self {
        ImageError::Truncated {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    /// Damage in `path`.
    pub fn damaged(path: &std::path::Path, problem: impl Into<String>) -> Self {
        ImageError::Damaged {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

impl From<ImageError> for std::io::Error {
    fn from(e: ImageError) -> Self {
        let kind = match &e {
            ImageError::Io { source, .. } => source.kind(),
            ImageError::Unsupported { .. } => std::io::ErrorKind::Unsupported,
            ImageError::GuessedReference { .. } | ImageError::NeedsSecret { .. } => {
                std::io::ErrorKind::PermissionDenied
            }
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, e)
    }
}
