//! Object names inside the bucket, and the one format the store writes there besides block
//! objects: the image manifest.
//!
//! ```text
//! PREFIX/blocks/ab/abcdef…(64 hex)   one object per block, its bytes exactly as uploaded
//! PREFIX/images/NAME                  manifest of a registered image (below)
//! ```
//!
//! One object per block was chosen by measurement (see README "Running a store on S3"):
//! blocks are content-addressed and immutable, so create-if-absent, fetch, existence and
//! deletion are each one request on one key, and no pack ever needs rewriting by gc.
//! The two hex digits after `blocks/` give 256 shards that a rebuild lists in parallel;
//! since ids are uniform hashes, keys also spread evenly over S3's key-range partitions.
//!
//! Manifest object (little-endian):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `BONSAIM1` |
//! | 8 | 8 | logical bytes of the image |
//! | 16 | 32 × n | the distinct block ids it uses |

use bonsai_core::BlockId;

/// First bytes of a manifest object; the digit is its version.
pub const MANIFEST_MAGIC: &[u8; 8] = b"BONSAIM1";

/// Key names under one store prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    base: String,
}

impl Layout {
    /// The layout under `prefix` (empty: the bucket's root).
    pub fn new(prefix: &str) -> Self {
        let base = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Layout { base }
    }

    /// Key of a block object.
    pub fn block(&self, id: &BlockId) -> String {
        let h = id.to_hex();
        format!("{}blocks/{}/{h}", self.base, &h[..2])
    }

    /// Key prefix of one of the 256 block shards (`shard` is the id's first byte).
    pub fn shard(&self, shard: u8) -> String {
        format!("{}blocks/{shard:02x}/", self.base)
    }

    /// The id a block key names, if it is one (listings may hold foreign objects).
    pub fn block_id(&self, key: &str) -> Option<BlockId> {
        let rest = key.strip_prefix(&self.base)?.strip_prefix("blocks/")?;
        let (shard, hex) = rest.split_once('/')?;
        let id: BlockId = hex.parse().ok()?;
        (hex.len() == 64 && shard == &hex[..2]).then_some(id)
    }

    /// Key prefix of all manifests.
    pub fn images(&self) -> String {
        format!("{}images/", self.base)
    }

    /// Key of an image's manifest.
    pub fn image(&self, name: &str) -> String {
        format!("{}images/{name}", self.base)
    }

    /// The image name a manifest key names.
    pub fn image_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.base)?
            .strip_prefix("images/")
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }
}

/// Encodes a manifest object.
pub fn encode_manifest(logical: u64, ids: &[BlockId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 32 * ids.len());
    out.extend_from_slice(MANIFEST_MAGIC);
    out.extend_from_slice(&logical.to_le_bytes());
    for id in ids {
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// Decodes a manifest object: (logical bytes, ids), or why it is not one.
pub fn decode_manifest(bytes: &[u8]) -> Result<(u64, Vec<BlockId>), &'static str> {
    if bytes.len() < 16 || &bytes[..8] != MANIFEST_MAGIC {
        return Err("not a bonsai manifest (bad magic or too short)");
    }
    let body = &bytes[16..];
    if body.len() % 32 != 0 {
        return Err("manifest length is not 16 + 32 x ids");
    }
    let logical = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let ids = body
        .chunks_exact(32)
        .map(|c| BlockId::from_slice(c).expect("32 bytes"))
        .collect();
    Ok((logical, ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> BlockId {
        BlockId::from_slice(&[n; 32]).unwrap()
    }

    #[test]
    fn keys_round_trip() {
        for l in [Layout::new(""), Layout::new("team/store")] {
            let k = l.block(&id(0xab));
            assert!(
                k.ends_with(&format!("blocks/ab/{}", id(0xab).to_hex())),
                "{k}"
            );
            assert!(k.starts_with(&l.shard(0xab)));
            assert_eq!(l.block_id(&k), Some(id(0xab)));
            assert_eq!(l.image_name(&l.image("vm-1")), Some("vm-1"));
        }
        let l = Layout::new("p");
        assert_eq!(l.block_id("p/blocks/ab/xyz"), None);
        assert_eq!(
            l.block_id(&format!("p/blocks/00/{}", id(0xab).to_hex())),
            None
        );
        assert_eq!(
            l.block_id(&format!("q/blocks/ab/{}", id(0xab).to_hex())),
            None
        );
        assert_eq!(l.image_name("p/images/"), None);
    }

    #[test]
    fn manifest_refuses_damage() {
        let m = encode_manifest(7, &[id(1), id(2)]);
        assert!(decode_manifest(&m[..m.len() - 1]).is_err());
        assert!(decode_manifest(&m[..10]).is_err());
        let mut bad = m.clone();
        bad[0] ^= 1;
        assert!(decode_manifest(&bad).is_err());
    }

    proptest! {
        #[test]
        fn manifest_round_trips(logical in any::<u64>(), raw in proptest::collection::vec(any::<[u8; 32]>(), 0..50)) {
            let ids: Vec<BlockId> = raw.iter().map(|b| BlockId::from_slice(b).unwrap()).collect();
            prop_assert_eq!(decode_manifest(&encode_manifest(logical, &ids)).unwrap(), (logical, ids));
        }

        #[test]
        fn manifest_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_manifest(&bytes);
        }
    }
}
