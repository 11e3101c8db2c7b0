//! Sealed recipes: a recipe encrypted to its owner so the store can keep it without being
//! able to read it. Losing a recipe file otherwise means losing the image; with a sealed
//! copy in the store, `bonsai pull NAME --store S --recipe-key F` works on a machine that
//! holds nothing but the key.
//!
//! The encryption is the age format (crate `age`): an X25519 identity file (`age-keygen`,
//! or `bonsai recipe keygen`, a line `AGE-SECRET-KEY-1…`) or, for any other key file, its
//! first line as a passphrase (scrypt). No cryptography is made here.
//!
//! Plaintext: `bonsai-sealed-recipe 1\n`, the image name, `\n`, then the recipe bytes. The
//! name inside the seal stops a store (or anyone with write access) from answering a
//! request for one name with another sealed recipe of the same owner.
//!
//! Caveat: a passphrase is only as strong as it is long; scrypt slows guessing, it does not
//! make a short passphrase safe. The store holds the ciphertext for anyone with read access.

use age::secrecy::SecretString;
use std::path::{Path, PathBuf};

const MAGIC: &str = "bonsai-sealed-recipe 1\n";

/// Why sealing or opening a recipe failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read.
    #[error("cannot read recipe key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is empty or its identity line is malformed.
    #[error("recipe key file {path}: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Encryption failed.
    #[error("sealing the recipe failed: {0}")]
    Encrypt(String),
    /// Wrong key or damaged ciphertext.
    #[error("cannot open the sealed recipe of {name}: {reason} (wrong --recipe-key?)")]
    Decrypt {
        /// Image name.
        name: String,
        /// Cause.
        reason: String,
    },
    /// Decrypted, but not a sealed recipe of this name.
    #[error("sealed recipe of {name} is not valid: {reason}")]
    Invalid {
        /// Image name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The key a recipe is sealed with: an age identity or a passphrase.
pub enum RecipeKey {
    /// X25519 identity (`AGE-SECRET-KEY-1…`).
    Identity(Box<age::x25519::Identity>),
    /// Passphrase (scrypt).
    Passphrase(SecretString),
}

impl RecipeKey {
    /// Reads a key file: an age identity line if it holds one (comments `#` allowed),
    /// else its first line is the passphrase.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let text = std::fs::read_to_string(path).map_err(|source| SealError::KeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// A key from the text of a key file (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, SealError> {
        let bad = |reason: &str| SealError::BadKey {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let lines = text.lines().map(str::trim);
        if let Some(line) = lines.clone().find(|l| l.starts_with("AGE-SECRET-KEY-")) {
            let id = line
                .parse::<age::x25519::Identity>()
                .map_err(|e| bad(&format!("malformed age identity: {e}")))?;
            return Ok(RecipeKey::Identity(Box::new(id)));
        }
        let pass = lines.into_iter().next().unwrap_or("");
        if pass.is_empty() {
            return Err(bad("empty; put a passphrase or an age identity in it"));
        }
        Ok(RecipeKey::Passphrase(SecretString::from(pass.to_string())))
    }

    /// A new random identity, as the text of a key file.
    pub fn generate() -> String {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        format!(
            "# bonsai recipe key (age identity); public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        )
    }
}

/// Encrypts `recipe` (the recipe file's bytes) of image `name` to `key`.
pub fn seal(name: &str, recipe: &[u8], key: &RecipeKey) -> Result<Vec<u8>, SealError> {
    let mut plain = Vec::with_capacity(MAGIC.len() + name.len() + 1 + recipe.len());
    plain.extend_from_slice(MAGIC.as_bytes());
    plain.extend_from_slice(name.as_bytes());
    plain.push(b'\n');
    plain.extend_from_slice(recipe);
    let enc = |e: age::EncryptError| SealError::Encrypt(e.to_string());
    match key {
        RecipeKey::Identity(id) => age::encrypt(&id.to_public(), &plain).map_err(enc),
        RecipeKey::Passphrase(p) => {
            age::encrypt(&age::scrypt::Recipient::new(p.clone()), &plain).map_err(enc)
        }
    }
}

/// Decrypts a sealed recipe and checks it belongs to `name`; returns the recipe bytes.
pub fn open(name: &str, sealed: &[u8], key: &RecipeKey) -> Result<Vec<u8>, SealError> {
    let dec = |e: age::DecryptError| SealError::Decrypt {
        name: name.to_string(),
        reason: e.to_string(),
    };
    let plain = match key {
        RecipeKey::Identity(id) => age::decrypt(id.as_ref(), sealed).map_err(dec)?,
        RecipeKey::Passphrase(p) => {
            age::decrypt(&age::scrypt::Identity::new(p.clone()), sealed).map_err(dec)?
        }
    };
    let invalid = |reason: &str| SealError::Invalid {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let rest = plain
        .strip_prefix(MAGIC.as_bytes())
        .ok_or_else(|| invalid("not a bonsai sealed recipe"))?;
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| invalid("no image name"))?;
    if &rest[..nl] != name.as_bytes() {
        return Err(invalid(&format!(
            "it was sealed for image {:?}",
            String::from_utf8_lossy(&rest[..nl])
        )));
    }
    Ok(rest[nl + 1..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path, name: &str, text: &str) -> RecipeKey {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        RecipeKey::load(&p).unwrap()
    }

    #[test]
    fn identity_round_trip_and_wrong_key_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "k", &RecipeKey::generate());
        let other = key_file(dir.path(), "o", &RecipeKey::generate());
        let sealed = seal("vm", b"recipe bytes", &k).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"recipe"));
        assert_eq!(open("vm", &sealed, &k).unwrap(), b"recipe bytes");
        assert!(matches!(
            open("vm", &sealed, &other),
            Err(SealError::Decrypt { .. })
        ));
        assert!(matches!(
            open("other", &sealed, &k),
            Err(SealError::Invalid { .. })
        ));
    }

    #[test]
    fn passphrase_round_trip_and_wrong_passphrase_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "p", "correct horse battery staple\n");
        let w = key_file(dir.path(), "w", "wrong horse\n");
        let sealed = seal("vm", b"r", &k).unwrap();
        assert_eq!(open("vm", &sealed, &k).unwrap(), b"r");
        let err = open("vm", &sealed, &w).unwrap_err().to_string();
        assert!(err.contains("wrong --recipe-key"), "{err}");
    }

    #[test]
    fn empty_or_malformed_key_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(RecipeKey::load(&p), Err(SealError::BadKey { .. })));
        std::fs::write(&p, "AGE-SECRET-KEY-1NOPE\n").unwrap();
        assert!(matches!(RecipeKey::load(&p), Err(SealError::BadKey { .. })));
    }
}
