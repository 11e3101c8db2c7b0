//! The block object: plaintext ⇄ (key, nonce, id, object). Pure: bytes in, bytes out.
//!
//! ```text
//! offset size field
//!  0     4    magic "BNSB"
//!  4     1    format version (1)
//!  5     1    codec: 0 = stored, 1 = zstd level 3
//!  6     2    reserved, zero
//!  8     4    plaintext length, u32 little-endian
//! 12    12    nonce
//! 24     n    AES-256-GCM ciphertext of the payload, then the 16-byte tag
//! ```
//! key   = BLAKE3-keyed(convergence key, plaintext)
//! nonce = BLAKE3-derive-key("bonsai 2026-11 block nonce", key ‖ header[0..12] ‖ payload)[0..12]
//! id    = BLAKE3(whole object)
//!
//! The header's first 24 bytes are the GCM associated data, so a changed codec or length
//! fails authentication. Decoding checks everything the encoder guarantees: the id, the
//! header, the tag, the decompressed length and finally that the plaintext re-derives
//! the key. See docs/FORMAT.md for the reasons.

use crate::id::{BlockId, BlockKey};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

/// Magic bytes opening every block object.
pub const OBJECT_MAGIC: &[u8; 4] = b"BNSB";
/// Block-object format version written by this code.
pub const OBJECT_VERSION: u8 = 1;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 24;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Largest plaintext a block may hold (equals the largest chunk).
pub const MAX_PLAIN: usize = crate::chunk::MAX_CHUNK as usize;
/// Largest object a valid block can be.
pub const MAX_OBJECT: usize = HEADER_LEN + MAX_PLAIN + TAG_LEN;
/// zstd level for codec 1. Part of the format: another level gives other ids.
pub const ZSTD_LEVEL: i32 = 3;

const NONCE_CONTEXT: &str = "bonsai 2026-11 block nonce";
const SECRET_CONTEXT: &str = "bonsai 2026-11 convergence secret";
const FINGERPRINT_CONTEXT: &str = "bonsai 2026-11 convergence fingerprint";
/// Secret used when the user gives none: public, so everyone's blocks deduplicate.
pub const PUBLIC_SECRET: &[u8] = b"bonsai public convergence secret";

/// How the payload inside the ciphertext is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Plaintext as is (used when zstd does not make it smaller).
    Stored = 0,
    /// zstd at [`ZSTD_LEVEL`], single frame.
    Zstd = 1,
}

/// Why a block object was refused. Every variant names the block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The object does not hash to the id it was fetched under.
    #[error("block {id}: content does not match its id (corrupt or substituted object)")]
    IdMismatch { id: BlockId },
    /// Shorter than a header and tag.
    #[error("block {id}: truncated object ({len} bytes)")]
    Truncated { id: BlockId, len: usize },
    /// Not a block object at all.
    #[error("block {id}: bad magic, not a bonsai block object")]
    BadMagic { id: BlockId },
    /// Written by a newer bonsai.
    #[error("block {id}: unsupported block format version {version}")]
    UnsupportedVersion { id: BlockId, version: u8 },
    /// Unknown payload codec.
    #[error("block {id}: unknown codec {codec}")]
    UnknownCodec { id: BlockId, codec: u8 },
    /// Header declares more than a block can hold.
    #[error("block {id}: declared plaintext length {len} exceeds the 16 MiB limit")]
    TooLarge { id: BlockId, len: usize },
    /// The tag did not verify: wrong key, or the object was altered.
    #[error("block {id}: decryption failed (wrong key or tampered object)")]
    Decrypt { id: BlockId },
    /// zstd refused the payload or it decompressed to another length.
    #[error("block {id}: payload does not decompress to the declared length")]
    Decompress { id: BlockId },
    /// The plaintext does not derive the key the recipe holds.
    #[error("block {id}: plaintext does not match its key (wrong convergence secret?)")]
    KeyMismatch { id: BlockId },
}

/// The convergence secret, ready to derive keys. Holders of the same secret share blocks.
#[derive(Clone)]
pub struct Convergence {
    key: [u8; 32],
}

impl Convergence {
    /// The public default: dedup with every bonsai user.
    pub fn public() -> Self {
        Self::from_secret(PUBLIC_SECRET)
    }

    /// A private secret: dedup only among its holders; outsiders cannot confirm guesses.
    pub fn from_secret(secret: &[u8]) -> Self {
        Convergence {
            key: blake3::derive_key(SECRET_CONTEXT, secret),
        }
    }

    /// The convergent key of a plaintext.
    pub fn key_for(&self, plain: &[u8]) -> BlockKey {
        BlockKey(*blake3::keyed_hash(&self.key, plain).as_bytes())
    }

    /// Short public fingerprint recorded in recipes so pull can say "wrong secret" plainly.
    pub fn fingerprint(&self) -> [u8; 8] {
        let full = blake3::derive_key(FINGERPRINT_CONTEXT, &self.key);
        full[..8].try_into().expect("8 bytes")
    }
}

impl std::fmt::Debug for Convergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Convergence({})", hex::encode(self.fingerprint()))
    }
}

/// A block ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBlock {
    /// Convergent key (goes into the recipe).
    pub key: BlockKey,
    /// Content address (goes to the store and the recipe).
    pub id: BlockId,
    /// The bytes the store keeps.
    pub object: Vec<u8>,
}

/// Encodes blocks, reusing one zstd context. One per thread.
pub struct Encoder {
    zstd: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A fresh encoder.
    pub fn new() -> Self {
        let zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context");
        Encoder {
            zstd,
            scratch: Vec::new(),
        }
    }

    /// Derives the key, then encodes. Use [`Encoder::encode_with_key`] when the key is known.
    pub fn encode(&mut self, conv: &Convergence, plain: &[u8]) -> EncodedBlock {
        let key = conv.key_for(plain);
        self.encode_with_key(key, plain)
    }

    /// Compresses (if that helps), encrypts and identifies `plain` under `key`.
    ///
    /// Panics if `plain` exceeds [`MAX_PLAIN`]: chunkers never produce such blocks.
    pub fn encode_with_key(&mut self, key: BlockKey, plain: &[u8]) -> EncodedBlock {
        assert!(plain.len() <= MAX_PLAIN, "block larger than MAX_PLAIN");
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(plain.len()));
        let compressed = self
            .zstd
            .compress_to_buffer(plain, &mut self.scratch)
            .is_ok()
            && self.scratch.len() < plain.len();
        let (codec, payload): (Codec, &[u8]) = if compressed {
            (Codec::Zstd, &self.scratch)
        } else {
            (Codec::Stored, plain)
        };
        let mut object = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
        object.extend_from_slice(OBJECT_MAGIC);
        object.push(OBJECT_VERSION);
        object.push(codec as u8);
        object.extend_from_slice(&[0, 0]);
        object.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        let nonce = derive_nonce(&key, &object[..12], payload);
        object.extend_from_slice(&nonce);
        object.extend_from_slice(payload);
        let (header, body) = object.split_at_mut(HEADER_LEN);
        let tag = cipher(&key)
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), header, body)
            .expect("AES-GCM encryption of a bounded buffer cannot fail");
        object.extend_from_slice(&tag);
        let id = BlockId(*blake3::hash(&object).as_bytes());
        EncodedBlock { key, id, object }
    }
}

fn cipher(key: &BlockKey) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(key.as_bytes()).expect("32-byte key")
}

/// Nonce from the key and the exact payload: a (key, nonce) pair never meets two messages,
/// even if another zstd version compresses the same plaintext differently.
pub fn derive_nonce(key: &BlockKey, header12: &[u8], payload: &[u8]) -> [u8; 12] {
    let mut h = blake3::Hasher::new_derive_key(NONCE_CONTEXT);
    h.update(key.as_bytes());
    h.update(header12);
    h.update(payload);
    let out = h.finalize();
    out.as_bytes()[..12].try_into().expect("12 bytes")
}

/// Checks only what the store can check without the key: the id matches the bytes and the
/// header is sane. The store runs this on every upload.
pub fn verify_object(id: &BlockId, object: &[u8]) -> Result<(), CodecError> {
    if blake3::hash(object).as_bytes() != id.as_bytes() {
        return Err(CodecError::IdMismatch { id: *id });
    }
    parse_header(id, object).map(|_| ())
}

fn parse_header(id: &BlockId, object: &[u8]) -> Result<(Codec, usize), CodecError> {
    let id = *id;
    if object.len() < HEADER_LEN + TAG_LEN {
        return Err(CodecError::Truncated {
            id,
            len: object.len(),
        });
    }
    if &object[..4] != OBJECT_MAGIC {
        return Err(CodecError::BadMagic { id });
    }
    if object[4] != OBJECT_VERSION {
        return Err(CodecError::UnsupportedVersion {
            id,
            version: object[4],
        });
    }
    let codec = match object[5] {
        0 => Codec::Stored,
        1 => Codec::Zstd,
        codec => return Err(CodecError::UnknownCodec { id, codec }),
    };
    let len = u32::from_le_bytes(object[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_PLAIN {
        return Err(CodecError::TooLarge { id, len });
    }
    Ok((codec, len))
}

thread_local! {
    /// One zstd decompression context per thread: creating one costs more than a block.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Verifies, decrypts, decompresses and re-derives the key. Only then is the plaintext returned.
pub fn decode(
    conv: &Convergence,
    id: &BlockId,
    key: &BlockKey,
    object: &[u8],
) -> Result<Vec<u8>, CodecError> {
    verify_object(id, object)?;
    let (codec, plain_len) = parse_header(id, object)?;
    let (header, rest) = object.split_at(HEADER_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut payload = ct.to_vec();
    cipher(key)
        .decrypt_in_place_detached(
            Nonce::from_slice(&header[12..24]),
            header,
            &mut payload,
            tag.into(),
        )
        .map_err(|_| CodecError::Decrypt { id: *id })?;
    let plain = match codec {
        Codec::Stored => payload,
        Codec::Zstd => {
            let mut out = Vec::with_capacity(plain_len);
            DECOMPRESSOR
                .with(|d| {
                    let mut d = d.borrow_mut();
                    if d.is_none() {
                        *d = Some(zstd::bulk::Decompressor::new()?);
                    }
                    d.as_mut()
                        .expect("just set")
                        .decompress_to_buffer(&payload, &mut out)
                })
                .map_err(|_| CodecError::Decompress { id: *id })?;
            out
        }
    };
    if plain.len() != plain_len {
        return Err(CodecError::Decompress { id: *id });
    }
    if conv.key_for(&plain) != *key {
        return Err(CodecError::KeyMismatch { id: *id });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog ".repeat(100)
    }

    #[test]
    fn round_trip_compressible_and_not() {
        let conv = Convergence::public();
        let mut enc = Encoder::new();
        let text = sample();
        let b = enc.encode(&conv, &text);
        assert_eq!(b.object[5], Codec::Zstd as u8);
        assert!(b.object.len() < text.len());
        assert_eq!(decode(&conv, &b.id, &b.key, &b.object).unwrap(), text);

        let tiny = b"x".to_vec();
        let b = enc.encode(&conv, &tiny);
        assert_eq!(b.object[5], Codec::Stored as u8);
        assert_eq!(b.object.len(), HEADER_LEN + 1 + TAG_LEN);
        assert_eq!(decode(&conv, &b.id, &b.key, &b.object).unwrap(), tiny);
    }

    #[test]
    fn encoding_is_deterministic() {
        let conv = Convergence::public();
        let a = Encoder::new().encode(&conv, &sample());
        let b = Encoder::new().encode(&conv, &sample());
        assert_eq!(a, b);
    }

    #[test]
    fn flipped_bit_is_id_mismatch() {
        let conv = Convergence::public();
        let b = Encoder::new().encode(&conv, &sample());
        for pos in [0, 5, 13, 30, b.object.len() - 1] {
            let mut bad = b.object.clone();
            bad[pos] ^= 0x10;
            assert_eq!(
                decode(&conv, &b.id, &b.key, &bad),
                Err(CodecError::IdMismatch { id: b.id })
            );
        }
    }

    /// An attacker who controls the id too (recomputes BLAKE3) still cannot pass the tag.
    #[test]
    fn flipped_bit_with_matching_id_fails_authentication() {
        let conv = Convergence::public();
        let b = Encoder::new().encode(&conv, &sample());
        let mut bad = b.object.clone();
        bad[40] ^= 1;
        let id = BlockId(*blake3::hash(&bad).as_bytes());
        assert_eq!(
            decode(&conv, &id, &b.key, &bad),
            Err(CodecError::Decrypt { id })
        );
    }

    #[test]
    fn wrong_key_fails() {
        let conv = Convergence::public();
        let b = Encoder::new().encode(&conv, &sample());
        let wrong = BlockKey([7; 32]);
        assert_eq!(
            decode(&conv, &b.id, &wrong, &b.object),
            Err(CodecError::Decrypt { id: b.id })
        );
    }

    #[test]
    fn wrong_secret_is_key_mismatch() {
        let b = Encoder::new().encode(&Convergence::public(), &sample());
        let other = Convergence::from_secret(b"team secret");
        assert_eq!(
            decode(&other, &b.id, &b.key, &b.object),
            Err(CodecError::KeyMismatch { id: b.id })
        );
    }

    #[test]
    fn truncated_object() {
        let conv = Convergence::public();
        let b = Encoder::new().encode(&conv, &sample());
        for len in [0, 10, HEADER_LEN + TAG_LEN - 1] {
            let cut = &b.object[..len];
            let id = BlockId(*blake3::hash(cut).as_bytes());
            assert_eq!(
                decode(&conv, &id, &b.key, cut),
                Err(CodecError::Truncated { id, len })
            );
        }
        let cut = &b.object[..b.object.len() - 1];
        let id = BlockId(*blake3::hash(cut).as_bytes());
        assert_eq!(
            decode(&conv, &id, &b.key, cut),
            Err(CodecError::Decrypt { id })
        );
    }

    #[test]
    fn header_errors() {
        let conv = Convergence::public();
        let b = Encoder::new().encode(&conv, &sample());
        let check = |pos: usize, val: u8| {
            let mut bad = b.object.clone();
            bad[pos] = val;
            let id = BlockId(*blake3::hash(&bad).as_bytes());
            decode(&conv, &id, &b.key, &bad).unwrap_err()
        };
        assert!(matches!(check(0, b'X'), CodecError::BadMagic { .. }));
        assert!(matches!(
            check(4, 9),
            CodecError::UnsupportedVersion { version: 9, .. }
        ));
        assert!(matches!(
            check(5, 7),
            CodecError::UnknownCodec { codec: 7, .. }
        ));
        assert!(matches!(check(11, 0xff), CodecError::TooLarge { .. }));
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 1..20_000), rep in 1usize..4) {
            let data = data.repeat(rep);
            let conv = Convergence::public();
            let b = Encoder::new().encode(&conv, &data);
            prop_assert_eq!(decode(&conv, &b.id, &b.key, &b.object).unwrap(), data);
        }

        #[test]
        fn secrets_separate_keys_and_ids(data in proptest::collection::vec(any::<u8>(), 1..5000)) {
            let a = Encoder::new().encode(&Convergence::public(), &data);
            let b = Encoder::new().encode(&Convergence::from_secret(b"ours"), &data);
            prop_assert_ne!(a.key, b.key);
            prop_assert_ne!(a.id, b.id);
        }

        #[test]
        fn garbage_never_panics(obj in proptest::collection::vec(any::<u8>(), 0..200), flip in any::<bool>()) {
            let mut obj = obj;
            if flip && obj.len() >= 12 {
                obj[..4].copy_from_slice(OBJECT_MAGIC);
                obj[4] = 1;
            }
            let id = BlockId(*blake3::hash(&obj).as_bytes());
            prop_assert!(decode(&Convergence::public(), &id, &BlockKey([1; 32]), &obj).is_err());
        }
    }
}
