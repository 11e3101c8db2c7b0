//! Endpoint, region and credentials of the object store, from the variables every S3 tool
//! reads (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`) or, when the keys are not in the environment, from the shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`, profile
//! `AWS_PROFILE` or `default`).
//!
//! Only the values are read here; signing, retries and the HTTP client are `object_store`'s.
//! Without keys anywhere, `object_store`'s own chain (instance or container roles) applies.

use std::path::{Path, PathBuf};

/// What the server needs to reach the bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host:port` of an S3-compatible service; `None` means AWS itself.
    pub endpoint: Option<String>,
    /// Signing region (`us-east-1` when unset; most S3-compatible servers accept any).
    pub region: String,
    /// Static keys, when given.
    pub keys: Option<S3Keys>,
}

/// An access key pair (and an optional session token).
#[derive(Clone, PartialEq, Eq)]
pub struct S3Keys {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
}

// Never print secrets, even in debug logs.
impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.keys.as_ref().map(|k| &k.access_key_id),
            )
            .finish()
    }
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// One of the two keys is set without the other.
    #[error("{0} is set but {1} is not: set both, or neither to use a credentials file")]
    HalfKeys(&'static str, &'static str),
    /// The credentials file exists but cannot be used.
    #[error("credentials file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The endpoint is not an http(s) URL.
    #[error("AWS_ENDPOINT_URL {0:?} is not an http:// or https:// URL")]
    Endpoint(String),
}

impl S3Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::resolve(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `var` (the environment, or a table in tests).
    pub fn resolve(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
        if let Some(e) = &endpoint {
            let lower = e.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err(SettingsError::Endpoint(e.clone()));
            }
        }
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let keys = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(S3Keys {
                access_key_id,
                secret_access_key,
                session_token: var("AWS_SESSION_TOKEN"),
            }),
            (Some(_), None) => {
                return Err(SettingsError::HalfKeys(
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ))
            }
            (None, Some(_)) => {
                return Err(SettingsError::HalfKeys(
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_ACCESS_KEY_ID",
                ))
            }
            (None, None) => keys_from_file(&var)?,
        };
        Ok(S3Settings {
            endpoint,
            region,
            keys,
        })
    }
}

/// Keys from the shared credentials file; `None` when there is no file (or no `default`
/// profile in it). A profile named by `AWS_PROFILE` must exist.
fn keys_from_file(var: &impl Fn(&str) -> Option<String>) -> Result<Option<S3Keys>, SettingsError> {
    let path = match var("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => match var("HOME") {
            Some(h) => Path::new(&h).join(".aws").join("credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SettingsError::File {
                path,
                reason: e.to_string(),
            })
        }
    };
    let named = var("AWS_PROFILE");
    let profile = named.clone().unwrap_or_else(|| "default".to_string());
    let fail = |reason: String| SettingsError::File {
        path: path.clone(),
        reason,
    };
    let Some(fields) = profile_fields(&text, &profile) else {
        return match named {
            Some(_) => Err(fail(format!("no [{profile}] profile (from AWS_PROFILE)"))),
            None => Ok(None),
        };
    };
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(S3Keys {
            access_key_id,
            secret_access_key,
            session_token: get("aws_session_token"),
        })),
        _ => Err(fail(format!(
            "profile [{profile}] lacks aws_access_key_id or aws_secret_access_key"
        ))),
    }
}

/// The `key = value` lines of one `[profile]` section of an INI file.
fn profile_fields(text: &str, profile: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut found = false;
    let mut fields = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            found |= inside;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
    found.then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)]) -> Result<S3Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        S3Settings::resolve(|k| map.get(k).cloned())
    }

    #[test]
    fn environment_keys_win() {
        let s = resolve(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8333"),
            ("AWS_ACCESS_KEY_ID", "ak"),
            ("AWS_SECRET_ACCESS_KEY", "sk"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/proc/bonsai-no-credentials"),
        ])
        .unwrap();
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(s.region, "us-east-1");
        let k = s.keys.unwrap();
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.as_str()),
            ("ak", "sk")
        );
        assert!(!format!(
            "{:?}",
            resolve(&[
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "SECRET")
            ])
            .unwrap()
        )
        .contains("SECRET"));
    }

    #[test]
    fn credentials_file_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("credentials");
        std::fs::write(
            &f,
            "# comment\n[default]\naws_access_key_id = dk\naws_secret_access_key=ds\n\n[team]\nAWS_ACCESS_KEY_ID=tk\naws_secret_access_key = ts\naws_session_token = tt\n",
        )
        .unwrap();
        let file = f.to_str().unwrap();
        let d = resolve(&[("AWS_SHARED_CREDENTIALS_FILE", file)]).unwrap();
        assert_eq!(d.keys.unwrap().access_key_id, "dk");
        let t = resolve(&[
            ("AWS_SHARED_CREDENTIALS_FILE", file),
            ("AWS_PROFILE", "team"),
        ])
        .unwrap()
        .keys
        .unwrap();
        assert_eq!(
            (t.access_key_id.as_str(), t.session_token.as_deref()),
            ("tk", Some("tt"))
        );
        let e = resolve(&[
            ("AWS_SHARED_CREDENTIALS_FILE", file),
            ("AWS_PROFILE", "nope"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("no [nope] profile"), "{e}");
        assert!(
            resolve(&[("AWS_SHARED_CREDENTIALS_FILE", "/proc/bonsai-no-credentials")])
                .unwrap()
                .keys
                .is_none()
        );
    }

    #[test]
    fn refuses_half_keys_and_bad_endpoints() {
        assert!(matches!(
            resolve(&[("AWS_ACCESS_KEY_ID", "a")]),
            Err(SettingsError::HalfKeys(..))
        ));
        assert!(matches!(
            resolve(&[("AWS_ENDPOINT_URL", "127.0.0.1:8333")]),
            Err(SettingsError::Endpoint(_))
        ));
    }
}
