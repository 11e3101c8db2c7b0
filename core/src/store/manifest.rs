//! Image versions as a store's backend keeps them (docs/FORMAT.md "Manifest"): one immutable
//! object per version, written once (create-only) and never replaced, under a key made
//! from a hash of the name, so a name of any legal length is a short, safe file or object
//! name. The name and everything else the index holds about a version is inside the
//! object, so the index can always be rebuilt from the objects alone.
//!
//! ```text
//! bonsai-manifest 2\n
//! {"name":…,"version":…,"registered":…,"logical_bytes":…,"zero_bytes":…,"image_hash":…,"by":…}\n
//! 32-byte block ids, distinct, in first-use order
//! ```
//!
//! Stores written before versions existed kept the register body alone (`u64 LE logical
//! size ‖ ids`) under the image name; [`parse_legacy`] reads it as version 1.

use crate::id::BlockId;
use crate::name::name_problem;

const MAGIC: &[u8] = b"bonsai-manifest 2\n";
/// Longest header line accepted (a name is at most 255 bytes; the rest is small).
const MAX_HEADER: usize = 4096;

/// What the index records of a version, and the manifest's header line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionHeader {
    /// Image name.
    pub name: String,
    /// Version number, from 1.
    pub version: u64,
    /// Registration time, Unix seconds.
    pub registered: i64,
    /// Virtual size of the image.
    pub logical_bytes: u64,
    /// Bytes of holes, when the client said.
    pub zero_bytes: Option<u64>,
    /// Image hash from the recipe (hex), when the client said.
    pub image_hash: Option<String>,
    /// Who registered it (token label or fingerprint).
    pub by: String,
}

/// The key of a version's manifest and of its sealed recipe in the backend.
pub fn key(name: &str, version: u64) -> String {
    let h = blake3::hash(name.as_bytes()).to_hex();
    format!("{}.{version}", &h[..40])
}

/// The manifest object of a version.
pub fn encode(header: &VersionHeader, ids: &[BlockId]) -> Vec<u8> {
    let line = serde_json::to_vec(header).expect("serializable");
    let mut out = Vec::with_capacity(MAGIC.len() + line.len() + 1 + ids.len() * 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&line);
    out.push(b'\n');
    for id in ids {
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// A manifest object, if it is a well-formed version-2 manifest stored under `key`.
pub fn parse(stored_key: &str, bytes: &[u8]) -> Option<(VersionHeader, Vec<BlockId>)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let nl = rest.iter().take(MAX_HEADER).position(|&b| b == b'\n')?;
    let header: VersionHeader = serde_json::from_slice(&rest[..nl]).ok()?;
    if name_problem(&header.name).is_some()
        || header.version == 0
        || key(&header.name, header.version) != stored_key
    {
        return None;
    }
    let ids = ids_of(&rest[nl + 1..])?;
    // one encoding per version: member order, spacing and escapes as the writer makes them
    (encode(&header, &ids) == bytes).then_some((header, ids))
}

/// A manifest of a store from before versions: `u64 LE logical size ‖ ids`.
pub fn parse_legacy(bytes: &[u8]) -> Option<(u64, Vec<BlockId>)> {
    if bytes.len() < 8 || bytes.starts_with(MAGIC) {
        return None;
    }
    let logical = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    Some((logical, ids_of(&bytes[8..])?))
}

fn ids_of(bytes: &[u8]) -> Option<Vec<BlockId>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes.chunks_exact(32).map(BlockId::from_slice).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str) -> VersionHeader {
        VersionHeader {
            name: name.into(),
            version: 3,
            registered: 1_700_000_000,
            logical_bytes: 1 << 20,
            zero_bytes: Some(4096),
            image_hash: Some("ab".repeat(32)),
            by: "token:0123abcd".into(),
        }
    }

    #[test]
    fn round_trips_and_parses_strictly() {
        let long = "n".repeat(255);
        for name in ["vm", "team/vm.raw", long.as_str()] {
            let h = header(name);
            let ids = vec![BlockId([1; 32]), BlockId([2; 32])];
            let bytes = encode(&h, &ids);
            let k = key(name, 3);
            assert!(k.len() < 64, "a short key for any name: {k}");
            assert_eq!(parse(&k, &bytes), Some((h.clone(), ids)));
            assert_eq!(parse(&key(name, 4), &bytes), None, "moved to another key");
            assert_eq!(parse(&k, &bytes[..bytes.len() - 1]), None);
            let spaced = String::from_utf8(bytes.clone())
                .unwrap_or_default()
                .replacen("\"version\":3", "\"version\": 3", 1);
            if !spaced.is_empty() {
                assert_eq!(parse(&k, spaced.as_bytes()), None, "one encoding only");
            }
            assert_eq!(parse_legacy(&bytes), None);
        }
        let mut legacy = 7u64.to_le_bytes().to_vec();
        legacy.extend_from_slice(&[1; 32]);
        assert_eq!(parse_legacy(&legacy).unwrap().0, 7);
        assert!(parse_legacy(&legacy[..legacy.len() - 1]).is_none());
        assert!(parse_legacy(&legacy[..4]).is_none());
    }
}
