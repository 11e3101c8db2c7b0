//! Packs (docs/FORMAT.md "Pack"): many block objects in one object-storage object, so that
//! an upload batch costs one PUT instead of one per block, and a download one ranged GET
//! per run of neighbouring blocks. The index of a pack is at its end, so a reader who
//! knows only the pack's size finds every block with one suffix read.
//!
//! ```text
//! header   "bonsai-pack\0" ‖ u32 LE version (1)                16 bytes
//! objects  the block objects back to back, exactly as uploaded
//! index    per object, in order: 32-byte id ‖ u32 LE length      36 bytes each
//! footer   u32 LE count ‖ first 16 bytes of BLAKE3(index) ‖ "bspk"   24 bytes
//! ```
//!
//! Offsets are implicit (the first object starts at 16, each next one where the last
//! ended), so an index can neither overlap objects nor leave gaps; a reader checks that
//! the lengths add up to the pack's size exactly. Every object is still verified by its
//! id when read: the index says where a block is, never that its bytes are right.

use crate::codec::MAX_OBJECT;
use crate::id::BlockId;

/// The pack format's version, in its header.
pub const VERSION: u32 = 1;
/// The header: magic and version.
pub const HEADER_LEN: usize = 16;
/// One index entry: id and length.
pub const ENTRY_LEN: usize = 36;
/// The footer: count, index hash, end magic.
pub const FOOTER_LEN: usize = 24;
/// Most objects in one pack (bounds the index a reader must hold: 288 KiB).
pub const MAX_BLOCKS: usize = 8192;

const MAGIC: &[u8; 12] = b"bonsai-pack\0";
const END: &[u8; 4] = b"bspk";

/// Where one block lies inside its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The block's id.
    pub id: BlockId,
    /// Offset of its object from the start of the pack.
    pub offset: u64,
    /// Length of its object.
    pub len: u32,
}

/// Why bytes are not a pack (or not the tail of one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// Shorter than the smallest pack, or than its footer says.
    #[error("pack is truncated: {0}")]
    Truncated(&'static str),
    /// The magic, version, index hash or sizes are wrong.
    #[error("not a valid pack: {0}")]
    Invalid(&'static str),
}

/// The pack holding `objects` (each already verified by its id), in this order. Ids must
/// be distinct, lengths 1..=[`MAX_OBJECT`], and at most [`MAX_BLOCKS`] of them.
pub fn encode(objects: &[(BlockId, &[u8])]) -> Vec<u8> {
    assert!(
        !objects.is_empty() && objects.len() <= MAX_BLOCKS,
        "pack of {} objects",
        objects.len()
    );
    let body: usize = objects.iter().map(|o| o.1.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + body + objects.len() * ENTRY_LEN + FOOTER_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for (_, bytes) in objects {
        assert!(
            !bytes.is_empty() && bytes.len() <= MAX_OBJECT,
            "object of {} bytes",
            bytes.len()
        );
        out.extend_from_slice(bytes);
    }
    let index_at = out.len();
    for (id, bytes) in objects {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    }
    let hash = blake3::hash(&out[index_at..]);
    out.extend_from_slice(&(objects.len() as u32).to_le_bytes());
    out.extend_from_slice(&hash.as_bytes()[..16]);
    out.extend_from_slice(END);
    out
}

/// How many objects the footer (the last [`FOOTER_LEN`] bytes of a pack) announces, and
/// so how long a tail [`parse_tail`] needs: `count * ENTRY_LEN + FOOTER_LEN`.
pub fn footer_count(footer: &[u8]) -> Result<usize, PackError> {
    if footer.len() < FOOTER_LEN {
        return Err(PackError::Truncated("no room for the footer"));
    }
    let f = &footer[footer.len() - FOOTER_LEN..];
    if &f[20..] != END {
        return Err(PackError::Invalid("no end magic"));
    }
    let count = u32::from_le_bytes(f[..4].try_into().expect("4 bytes")) as usize;
    if count == 0 || count > MAX_BLOCKS {
        return Err(PackError::Invalid("object count out of range"));
    }
    Ok(count)
}

/// The length of the tail holding the index and footer of a pack of `count` objects.
pub fn tail_len(count: usize) -> usize {
    count * ENTRY_LEN + FOOTER_LEN
}

/// The entries of a pack of `pack_len` bytes from its last bytes (at least
/// [`tail_len`] of the count its footer announces; more is fine). Exactly as strict as
/// [`encode`]: the index hash, distinct ids, lengths in range, and lengths that add up to
/// the pack's size with no byte to spare.
pub fn parse_tail(pack_len: u64, tail: &[u8]) -> Result<Vec<Entry>, PackError> {
    let count = footer_count(tail)?;
    let need = tail_len(count);
    if tail.len() < need {
        return Err(PackError::Truncated(
            "the index is longer than the bytes given",
        ));
    }
    let tail = &tail[tail.len() - need..];
    let (index, footer) = tail.split_at(count * ENTRY_LEN);
    if blake3::hash(index).as_bytes()[..16] != footer[4..20] {
        return Err(PackError::Invalid("index hash does not match"));
    }
    let mut entries = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut offset = HEADER_LEN as u64;
    for e in index.chunks_exact(ENTRY_LEN) {
        let id = BlockId::from_slice(&e[..32]).expect("32 bytes");
        let len = u32::from_le_bytes(e[32..].try_into().expect("4 bytes"));
        if len == 0 || len as usize > MAX_OBJECT {
            return Err(PackError::Invalid("object length out of range"));
        }
        if !seen.insert(id) {
            return Err(PackError::Invalid("an id appears twice"));
        }
        entries.push(Entry { id, offset, len });
        offset += u64::from(len);
    }
    if offset + need as u64 != pack_len {
        return Err(PackError::Invalid(
            "object lengths do not add up to the pack's size",
        ));
    }
    Ok(entries)
}

/// The entries of a whole pack, header included (`check --read-data`, fuzzing).
pub fn parse(pack: &[u8]) -> Result<Vec<Entry>, PackError> {
    if pack.len() < HEADER_LEN + FOOTER_LEN {
        return Err(PackError::Truncated("shorter than an empty pack"));
    }
    if &pack[..12] != MAGIC {
        return Err(PackError::Invalid("no pack magic"));
    }
    if pack[12..16] != VERSION.to_le_bytes() {
        return Err(PackError::Invalid("unknown pack version"));
    }
    parse_tail(pack.len() as u64, pack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Convergence, Encoder};
    use proptest::prelude::*;

    fn objects(texts: &[Vec<u8>]) -> Vec<(BlockId, Vec<u8>)> {
        let mut seen = std::collections::HashSet::new();
        texts
            .iter()
            .map(|t| {
                let b = Encoder::new().encode(&Convergence::public(), t);
                (b.id, b.object)
            })
            .filter(|(id, _)| seen.insert(*id))
            .collect()
    }

    fn pack_of(objs: &[(BlockId, Vec<u8>)]) -> Vec<u8> {
        let refs: Vec<(BlockId, &[u8])> = objs.iter().map(|(i, b)| (*i, &b[..])).collect();
        encode(&refs)
    }

    proptest! {
        #[test]
        fn every_object_is_where_the_index_says(texts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
            let objs = objects(&texts);
            let pack = pack_of(&objs);
            let entries = parse(&pack).unwrap();
            prop_assert_eq!(entries.len(), objs.len());
            for (e, (id, bytes)) in entries.iter().zip(&objs) {
                prop_assert_eq!(&e.id, id);
                let at = e.offset as usize;
                prop_assert_eq!(&pack[at..at + e.len as usize], &bytes[..]);
            }
            // a tail read of exactly the index, or of more, says the same
            let count = footer_count(&pack[pack.len() - FOOTER_LEN..]).unwrap();
            let tail = &pack[pack.len() - tail_len(count)..];
            prop_assert_eq!(parse_tail(pack.len() as u64, tail).unwrap(), entries);
        }

        #[test]
        fn any_flipped_byte_of_the_tail_is_refused(texts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..100), 1..6), pick in any::<usize>(), bit in 0u8..8) {
            let objs = objects(&texts);
            let mut pack = pack_of(&objs);
            let tail = tail_len(objs.len());
            let at = pack.len() - tail + pick % tail;
            pack[at] ^= 1 << bit;
            prop_assert!(parse(&pack).is_err());
        }
    }

    #[test]
    fn wrong_sizes_and_headers_are_refused() {
        let objs = objects(&[b"one".to_vec(), b"two".to_vec()]);
        let pack = pack_of(&objs);
        assert!(parse(&pack[1..]).is_err(), "header");
        let mut longer = pack.clone();
        longer.insert(20, 0);
        assert_eq!(
            parse(&longer),
            Err(PackError::Invalid(
                "object lengths do not add up to the pack's size"
            ))
        );
        let mut v2 = pack.clone();
        v2[12] = 2;
        assert_eq!(parse(&v2), Err(PackError::Invalid("unknown pack version")));
        assert!(parse(&pack[..30]).is_err());
        assert_eq!(
            parse_tail(pack.len() as u64, &pack[pack.len() - 30..]),
            Err(PackError::Truncated(
                "the index is longer than the bytes given"
            ))
        );
    }

    #[test]
    fn the_pinned_vector_parses() {
        // fixtures/vectors/pack-v1.bin: the pack of the public-secret objects of "one" and
        // "two"; BONSAI_BLESS=1 rewrites it (a format change: bump VERSION first)
        let objs = objects(&[b"one".to_vec(), b"two".to_vec()]);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/vectors/pack-v1.bin");
        if std::env::var_os("BONSAI_BLESS").is_some() {
            std::fs::write(&path, pack_of(&objs)).unwrap();
        }
        let pinned = std::fs::read(&path).unwrap();
        assert_eq!(pack_of(&objs), pinned);
        let entries = parse(&pinned).unwrap();
        assert_eq!(
            entries[1].offset,
            HEADER_LEN as u64 + objs[0].1.len() as u64
        );
    }
}
