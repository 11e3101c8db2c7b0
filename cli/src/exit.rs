//! Exit codes: one per class of failure, so scripts can tell "fix your command" from
//! "the store is down" from "the data is bad" (after restic's documented codes).
//!
//! The table lives in README.md ("Exit status"); keep the two in step. A failure is
//! classified by the first typed error found walking the error chain from the outside in,
//! so a context added by the binary never hides the cause's class.

use std::io;

/// What the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Success (also: stdout closed by the reader, as in `bonsai recipe show --json | head`).
    Ok = 0,
    /// A failure of no class below (a bug, or a store error we cannot classify).
    Other = 1,
    /// Bad arguments or refused input; nothing was changed.
    Usage = 2,
    /// The store refused the token (missing, wrong, or lacking the role).
    Auth = 3,
    /// A file, block or image that does not exist.
    NotFound = 4,
    /// Data failed its checks: a corrupt recipe, a block not matching its id, an image not
    /// matching the recipe.
    Verify = 5,
    /// The store could not be reached, or broke the protocol.
    Network = 6,
    /// Reading or writing a local file failed (permissions, disk full, device errors).
    LocalIo = 7,
}

/// A refusal the binary makes before any work: always [`Exit::Usage`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refusal(pub String);

/// A failure the binary itself classifies (a check that found damage, an image name the
/// store does not hold): its one-line reason and exit code.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct Failed {
    /// The exit code.
    pub exit: Exit,
    /// One line: what failed and what to do.
    pub reason: String,
}

impl Failed {
    /// A failure of class `exit`.
    pub(crate) fn new(exit: Exit, reason: impl Into<String>) -> Self {
        Failed {
            exit,
            reason: reason.into(),
        }
    }
}

/// The class of `err`.
pub(crate) fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(code) = classify_one(cause) {
            return code;
        }
    }
    Exit::Other
}

/// Whether the failure is only "the reader of stdout went away".
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let pipe = Some(io::ErrorKind::BrokenPipe);
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>().map(io::Error::kind) == pipe
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == pipe
    })
}

/// The binary's own refusals first; everything else is classified by core
/// ([`bonsai_core::ErrorKind::of`], the one classification of core's errors), through the
/// server's start-up classes for `serve`.
fn classify_one(e: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    if e.is::<Refusal>() || e.is::<crate::store::StoreSpecError>() {
        return Some(Exit::Usage);
    }
    if let Some(f) = e.downcast_ref::<Failed>() {
        return Some(f.exit);
    }
    bonsai_blockstore::kind_of(e).map(Exit::of)
}

impl Exit {
    /// The exit code of a class of failure (README, "Exit status").
    pub(crate) fn of(kind: bonsai_core::ErrorKind) -> Exit {
        use bonsai_core::ErrorKind as K;
        match kind {
            K::Usage => Exit::Usage,
            K::Auth => Exit::Auth,
            K::NotFound => Exit::NotFound,
            K::Verification => Exit::Verify,
            K::Network => Exit::Network,
            K::Io => Exit::LocalIo,
            K::Other => Exit::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use bonsai_core::codec::{SecretFileError, SecretFileFault};
    use bonsai_core::image::ImageError;
    use bonsai_core::recipe::RecipeError;
    use bonsai_core::store::StoreError;

    fn class(e: impl std::error::Error + Send + Sync + 'static) -> Exit {
        classify(&Err::<(), _>(e).context("outer context").unwrap_err())
    }

    #[test]
    fn each_class_has_its_code() {
        let store = || "http://s".to_string();
        let r = || "r".to_string();
        assert_eq!(class(Refusal("x".into())), Exit::Usage);
        let unauth = StoreError::Unauthorized {
            store: store(),
            reason: r(),
        };
        assert_eq!(class(unauth), Exit::Auth);
        let gone = StoreError::Unreachable {
            store: store(),
            reason: r(),
        };
        assert_eq!(class(gone), Exit::Network);
        assert_eq!(class(RecipeError::ChecksumMismatch), Exit::Verify);
        assert_eq!(class(RecipeError::BadMagic), Exit::Usage);
        let nf = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(class(RecipeError::Io(nf)), Exit::NotFound);
        let full = io::Error::from(io::ErrorKind::StorageFull);
        let core = bonsai_core::Error::Io {
            path: "/o".into(),
            source: full,
        };
        assert_eq!(class(core), Exit::LocalIo);
        assert_eq!(class(std::fmt::Error), Exit::Other);
        let cut = ImageError::Truncated {
            path: "/d.vmdk".into(),
            detail: "data at file offset 9 lies past its end (8 bytes)".into(),
        };
        assert_eq!(class(cut), Exit::Usage);
        let unreadable = ImageError::io(std::path::Path::new("/d"), io::ErrorKind::NotFound.into());
        assert_eq!(class(unreadable), Exit::NotFound);
        let secret = |kind| SecretFileError {
            path: "/s".into(),
            kind,
        };
        assert_eq!(class(secret(SecretFileFault::Empty)), Exit::Usage);
        let gone = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(class(secret(SecretFileFault::Io(gone))), Exit::NotFound);
    }

    #[test]
    fn an_image_refusal_carried_by_an_io_error_keeps_its_class() {
        let cut = ImageError::truncated(std::path::Path::new("/d.qcow2"), "data past end");
        let carried = io::Error::from(cut);
        assert_eq!(class(carried), Exit::Usage);
        let core = bonsai_core::Error::Io {
            path: "/d.qcow2".into(),
            source: io::Error::from(ImageError::damaged(std::path::Path::new("/d"), "x")),
        };
        assert_eq!(class(core), Exit::Usage);
        let refused = StoreError::Refused {
            store: "http://s".into(),
            code: bonsai_core::store::ErrorCode::Unknown,
            reason: "full".into(),
        };
        assert_eq!(
            class(refused),
            Exit::Other,
            "README: 1 is the store's own refusal"
        );
    }

    #[test]
    fn the_codes_are_cores_table() {
        use bonsai_core::ErrorKind as K;
        let kinds = [
            K::Usage,
            K::Auth,
            K::NotFound,
            K::Verification,
            K::Network,
            K::Io,
            K::Other,
        ];
        for k in kinds {
            assert_eq!(Exit::of(k) as i32, k.exit_code(), "{k:?}");
        }
    }

    #[test]
    fn broken_pipe_is_recognised_under_context() {
        let e = Err::<(), _>(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing")
            .unwrap_err();
        assert!(is_broken_pipe(&e));
        let json = serde_json::Error::io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&anyhow::Error::from(json)));
    }
}
