//! Why `serve` would not start, sorted into core's [`ErrorKind`]s so both binaries exit
//! with README's codes: a mistyped `--data`, token file or certificate is the operator's
//! to fix (2), a bucket that refuses the keys is 3, one that cannot be reached is 6.

use crate::backend::s3::S3Error;
use bonsai_core::ErrorKind;

/// A start-up refusal of the operator's input (`--data`, `--token-file`, `--listen`,
/// TLS files): nothing was created or changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartRefused(pub String);

/// The class of a failure of [`crate::serve`]: the first typed error in its chain.
pub fn error_kind(err: &anyhow::Error) -> ErrorKind {
    err.chain().find_map(kind_of).unwrap_or(ErrorKind::Other)
}

/// The class of one error of the server's own (or core's) types; `None` for others.
pub fn kind_of(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if e.is::<StartRefused>() || e.is::<crate::tls::TlsError>() {
        return Some(ErrorKind::Usage);
    }
    if let Some(s3) = e.downcast_ref::<S3Error>() {
        return Some(s3_kind(s3));
    }
    ErrorKind::of(e)
}

fn s3_kind(e: &S3Error) -> ErrorKind {
    match e {
        S3Error::Location(_) | S3Error::Settings(_) | S3Error::Setup { .. } => ErrorKind::Usage,
        S3Error::Denied { .. } => ErrorKind::Auth,
        S3Error::NoBucket { .. } => ErrorKind::NotFound,
        S3Error::Unreachable { .. } | S3Error::Request { .. } => ErrorKind::Network,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn start_failures_have_the_operators_classes() {
        let wrap = |e: anyhow::Error| e.context("starting the store");
        let refused = wrap(StartRefused("no such store".into()).into());
        assert_eq!(error_kind(&refused), ErrorKind::Usage);
        let denied = S3Error::Denied {
            store: "s3://b".into(),
            endpoint: "http://x".into(),
        };
        assert_eq!(error_kind(&wrap(denied.into())), ErrorKind::Auth);
        let down = S3Error::Unreachable {
            store: "s3://b".into(),
            endpoint: "http://x".into(),
            reason: "refused".into(),
        };
        assert_eq!(error_kind(&wrap(down.into())), ErrorKind::Network);
        let bad = crate::backend::s3::S3Location::parse("s3://A_B").unwrap_err();
        assert_eq!(
            error_kind(&wrap(S3Error::from(bad).into())),
            ErrorKind::Usage
        );
        let plain: anyhow::Result<()> = Err(anyhow::anyhow!("a bug"));
        assert_eq!(
            error_kind(&plain.context("x").unwrap_err()),
            ErrorKind::Other
        );
    }
}
