//! `--data s3://BUCKET/PREFIX`: which bucket, and which key prefix inside it, holds a store.
//!
//! Parsed strictly so that a typo is an error at start rather than a second, empty store:
//! the bucket name follows S3's rules (3-63 characters of `a-z 0-9 . -`), the prefix is
//! optional and may not contain empty or dot segments.

use std::fmt;

/// Where a store lives in object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

/// Why an `s3://` argument was refused.
#[derive(Debug, thiserror::Error)]
#[error("bad store location {arg}: {reason} (expected s3://BUCKET or s3://BUCKET/PREFIX)")]
pub struct LocationError {
    /// The argument as given.
    pub arg: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl S3Location {
    /// Whether a `--data` argument names object storage rather than a directory.
    pub fn is_s3(arg: &str) -> bool {
        arg.len() >= 5 && arg[..5].eq_ignore_ascii_case("s3://")
    }

    /// Parses `s3://bucket[/prefix]`.
    pub fn parse(arg: &str) -> Result<Self, LocationError> {
        let bad = |reason| LocationError {
            arg: arg.to_string(),
            reason,
        };
        if !Self::is_s3(arg) {
            return Err(bad("it does not start with s3://"));
        }
        let rest = &arg[5..];
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !bucket_ok {
            return Err(bad(
                "the bucket name must be 3-63 characters of a-z, 0-9, '.' and '-'",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(bad("the prefix has an empty, '.' or '..' segment"));
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
        {
            return Err(bad(
                "the prefix may hold only a-z, A-Z, 0-9, '/', '.', '_' and '-'",
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let l = S3Location::parse("s3://my-bucket/a/b/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("my-bucket", "a/b"));
        assert_eq!(l.to_string(), "s3://my-bucket/a/b");
        let l = S3Location::parse("S3://bucket").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bucket", ""));
        assert!(S3Location::is_s3("s3://x") && !S3Location::is_s3("/srv/store"));
    }

    #[test]
    fn refuses_bad_names() {
        for arg in [
            "s3://",
            "s3://ab",
            "s3://Bucket",
            "s3://bucket_x/p",
            "s3://-bucket",
            "s3://bucket/a//b",
            "s3://bucket/../x",
            "s3://bucket/a b",
            "/srv/store",
        ] {
            let e = S3Location::parse(arg).unwrap_err();
            assert!(e.to_string().contains(arg), "{e}");
        }
    }
}
