//! Sealed recipes: a recipe encrypted to its owner and signed by them, so the store can
//! keep it without being able to read, forge, swap, replay or stale it. Losing a recipe
//! file otherwise means losing the image; with a sealed copy in the store,
//! `bonsai pull NAME --store S --recipe-key F` works on a machine that holds nothing but the
//! key.
//!
//! The encryption is the age format (crate `age`): an X25519 identity file (`age-keygen`,
//! or `bonsai recipe keygen`, a line `AGE-SECRET-KEY-1…`) or, for any other key file, its
//! first line as a passphrase (scrypt). The signature is Ed25519 (crate `ed25519-dalek`)
//! under a key derived from the same key file (BLAKE3 `derive_key` of the identity line or
//! the passphrase), so whoever can open a sealed recipe can check who sealed it, and anyone
//! who knows only the age *public* key — every write token, the store operator — can
//! encrypt to the owner but cannot sign. No cryptography is made here.
//!
//! Plaintext (format 2, docs/FORMAT.md): `bonsai-sealed-recipe 2\n`, the image name,
//! `\n`, its version in decimal, `\n`, the image hash in hex, `\n`, the recipe bytes, then
//! the 64-byte signature over everything before it. Opening checks the signature first,
//! then that name, version and image hash are the ones asked for: a store answering with
//! another image's, another version's or an older sealed recipe is refused.
//!
//! Caveat: a passphrase is only as strong as it is long; scrypt slows guessing, it does not
//! make a short passphrase safe. The store holds the ciphertext for anyone with read access.

use age::secrecy::SecretString;
use std::path::{Path, PathBuf};

const MAGIC: &str = "bonsai-sealed-recipe 2\n";
/// Format 1 (unsigned) sealed recipes are recognised only to be refused with a reason.
const MAGIC_V1: &str = "bonsai-sealed-recipe 1\n";
/// BLAKE3 `derive_key` context of the signing key (docs/FORMAT.md).
const SIGNING_CONTEXT: &str = "bonsai 2026-12 sealed recipe signing key";
const SIGNATURE_LEN: usize = 64;

/// What a sealed recipe is bound to: the version the store registered.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Image name.
    pub name: &'a str,
    /// Registered version.
    pub version: u64,
    /// The image hash registered with that version.
    pub image_hash: &'a crate::ImageHash,
}

impl Binding<'_> {
    /// `NAME@VERSION`, for messages.
    fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The header lines of the plaintext.
    fn header(&self) -> String {
        format!(
            "{MAGIC}{}\n{}\n{}\n",
            self.name, self.version, self.image_hash
        )
    }
}

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

    /// The Ed25519 key this recipe key signs with: derived from the identity line or the
    /// passphrase, so it needs no file of its own.
    fn signing_key(&self) -> ed25519_dalek::SigningKey {
        use age::secrecy::ExposeSecret;
        let seed = match self {
            RecipeKey::Identity(id) => {
                blake3::derive_key(SIGNING_CONTEXT, id.to_string().expose_secret().as_bytes())
            }
            RecipeKey::Passphrase(p) => {
                blake3::derive_key(SIGNING_CONTEXT, p.expose_secret().as_bytes())
            }
        };
        ed25519_dalek::SigningKey::from_bytes(&seed)
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

/// Signs `recipe` (the recipe file's bytes) for the version `to`, then encrypts it to
/// `key`.
pub fn seal(to: &Binding<'_>, recipe: &[u8], key: &RecipeKey) -> Result<Vec<u8>, SealError> {
    use ed25519_dalek::Signer;
    let header = to.header();
    let mut plain = Vec::with_capacity(header.len() + recipe.len() + SIGNATURE_LEN);
    plain.extend_from_slice(header.as_bytes());
    plain.extend_from_slice(recipe);
    let signature = key.signing_key().sign(&plain);
    plain.extend_from_slice(&signature.to_bytes());
    let enc = |e: age::EncryptError| SealError::Encrypt(e.to_string());
    match key {
        RecipeKey::Identity(id) => age::encrypt(&id.to_public(), &plain).map_err(enc),
        RecipeKey::Passphrase(p) => {
            age::encrypt(&age::scrypt::Recipient::new(p.clone()), &plain).map_err(enc)
        }
    }
}

/// Decrypts a sealed recipe, checks its signature and that it was sealed for exactly the
/// version `want`; returns the recipe bytes.
pub fn open(want: &Binding<'_>, sealed: &[u8], key: &RecipeKey) -> Result<Vec<u8>, SealError> {
    let dec = |e: age::DecryptError| SealError::Decrypt {
        name: want.label(),
        reason: e.to_string(),
    };
    let plain = match key {
        RecipeKey::Identity(id) => age::decrypt(id.as_ref(), sealed).map_err(dec)?,
        RecipeKey::Passphrase(p) => {
            age::decrypt(&age::scrypt::Identity::new(p.clone()), sealed).map_err(dec)?
        }
    };
    open_plaintext(want, &plain, key)
}

/// The checks of [`open`] on a decrypted plaintext: signature under `key`'s signing key,
/// then name, version and image hash; returns the recipe bytes. (Public for the fuzz
/// target: a plaintext is what a hostile store controls once it can encrypt to us.)
pub fn open_plaintext(
    want: &Binding<'_>,
    plain: &[u8],
    key: &RecipeKey,
) -> Result<Vec<u8>, SealError> {
    let invalid = |reason: String| SealError::Invalid {
        name: want.label(),
        reason,
    };
    if plain.starts_with(MAGIC_V1.as_bytes()) {
        return Err(invalid(
            "it is an unsigned sealed recipe (format 1), which cannot be authenticated; pull \
             with the recipe file, or push the image again with --keep-recipe"
                .into(),
        ));
    }
    let signed = verified(plain, key).map_err(invalid)?;
    let (fields, recipe) = split_header(signed).map_err(invalid)?;
    let [name, version, hash] = fields;
    if name != want.name.as_bytes() {
        return Err(invalid(format!(
            "it was sealed for image {:?}",
            crate::name::for_terminal(&String::from_utf8_lossy(name))
        )));
    }
    if version != want.version.to_string().as_bytes() {
        return Err(invalid(format!(
            "it was sealed for version {} (a replayed or stale copy)",
            crate::name::for_terminal(&String::from_utf8_lossy(version))
        )));
    }
    if hash != want.image_hash.to_string().as_bytes() {
        return Err(invalid(
            "it was sealed for another image hash than the version registered".into(),
        ));
    }
    Ok(recipe.to_vec())
}

/// The signed part of a decrypted plaintext, if its signature verifies under `key`.
fn verified<'a>(plain: &'a [u8], key: &RecipeKey) -> Result<&'a [u8], String> {
    let not_ours = "its signature does not verify: it was not sealed by the holder of this \
                    key (forged by someone who knows only the public key?)";
    if !plain.starts_with(MAGIC.as_bytes()) {
        return Err("not a bonsai sealed recipe".into());
    }
    let Some(cut) = plain.len().checked_sub(SIGNATURE_LEN) else {
        return Err(not_ours.into());
    };
    let (signed, sig) = plain.split_at(cut);
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| not_ours.to_string())?;
    key.signing_key()
        .verifying_key()
        .verify_strict(signed, &sig)
        .map_err(|_| not_ours.to_string())?;
    Ok(signed)
}

/// Name, version and hash lines after the magic, and the recipe bytes after them.
fn split_header(signed: &[u8]) -> Result<([&[u8]; 3], &[u8]), String> {
    let mut rest = &signed[MAGIC.len()..];
    let mut fields: [&[u8]; 3] = [&[]; 3];
    for f in &mut fields {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("its header is cut short")?;
        *f = &rest[..nl];
        rest = &rest[nl + 1..];
    }
    Ok((fields, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageHash;

    fn key_file(dir: &Path, name: &str, text: &str) -> RecipeKey {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        RecipeKey::load(&p).unwrap()
    }

    const H1: ImageHash = ImageHash([1; 32]);
    const H2: ImageHash = ImageHash([2; 32]);

    fn to<'a>(name: &'a str, version: u64, image_hash: &'a ImageHash) -> Binding<'a> {
        Binding {
            name,
            version,
            image_hash,
        }
    }

    #[test]
    fn identity_round_trip_and_wrong_key_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "k", &RecipeKey::generate());
        let other = key_file(dir.path(), "o", &RecipeKey::generate());
        let sealed = seal(&to("vm", 1, &H1), b"recipe bytes", &k).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"recipe"));
        assert_eq!(
            open(&to("vm", 1, &H1), &sealed, &k).unwrap(),
            b"recipe bytes"
        );
        assert!(matches!(
            open(&to("vm", 1, &H1), &sealed, &other),
            Err(SealError::Decrypt { .. })
        ));
        let e = open(&to("other", 1, &H1), &sealed, &k).unwrap_err();
        assert!(e.to_string().contains("sealed for image"), "{e}");
    }

    #[test]
    fn replayed_stale_and_swapped_hash_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "k", &RecipeKey::generate());
        let v1 = seal(&to("vm", 1, &H1), b"old recipe", &k).unwrap();
        // the store answers a request for version 2 with version 1's sealed recipe
        let e = open(&to("vm", 2, &H1), &v1, &k).unwrap_err().to_string();
        assert!(e.contains("replayed or stale"), "{e}");
        let e = open(&to("vm", 1, &H2), &v1, &k).unwrap_err().to_string();
        assert!(e.contains("image hash"), "{e}");
    }

    #[test]
    fn a_recipe_sealed_with_only_the_public_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "k", &RecipeKey::generate());
        let RecipeKey::Identity(id) = &k else {
            unreachable!()
        };
        // An attacker knows the owner's public key and the format: a well-formed plaintext
        // with a made-up signature, encrypted to the owner.
        let attacker = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let mut plain = to("vm", 1, &H1).header().into_bytes();
        plain.extend_from_slice(b"attacker's recipe");
        let sig = ed25519_dalek::Signer::sign(&attacker, &plain);
        plain.extend_from_slice(&sig.to_bytes());
        let forged = age::encrypt(&id.to_public(), &plain).unwrap();
        let e = open(&to("vm", 1, &H1), &forged, &k)
            .unwrap_err()
            .to_string();
        assert!(e.contains("signature does not verify"), "{e}");
        // and an unsigned (format 1) plaintext
        let mut v1 = MAGIC_V1.as_bytes().to_vec();
        v1.extend_from_slice(b"vm\nrecipe");
        let old = age::encrypt(&id.to_public(), &v1).unwrap();
        let e = open(&to("vm", 1, &H1), &old, &k).unwrap_err().to_string();
        assert!(e.contains("unsigned"), "{e}");
    }

    #[test]
    fn passphrase_round_trip_and_wrong_passphrase_refused() {
        let dir = tempfile::tempdir().unwrap();
        let k = key_file(dir.path(), "p", "correct horse battery staple\n");
        let w = key_file(dir.path(), "w", "wrong horse\n");
        let sealed = seal(&to("vm", 3, &H2), b"r", &k).unwrap();
        assert_eq!(open(&to("vm", 3, &H2), &sealed, &k).unwrap(), b"r");
        let err = open(&to("vm", 3, &H2), &sealed, &w)
            .unwrap_err()
            .to_string();
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
