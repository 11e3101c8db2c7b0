//! Boot profiles: which blocks the first client of an export read, in the order it first
//! read them. Kept in the store beside the image's manifest (`PUT /v1/profiles/NAME@V`),
//! so the next export of that image — or of another version sharing those blocks —
//! fetches them first, in a few large requests, before the VM asks.
//!
//! ```text
//! 0   4  magic "BNSP"
//! 4   1  format version (1)
//! 5   3  zero
//! 8   4  count N, u32 LE (1..=MAX_PROFILE_BLOCKS)
//! 12 32N block ids, in first-read order, each at most once
//! ..  32  BLAKE3 of every byte before this field
//! ```
//! docs/FORMAT.md is the normative description. The profile holds ids only — what the
//! store already sees in a manifest — never keys, so it reveals the order of reads and
//! nothing of the content. Readers are as strict as the writer: any other length, a
//! repeated id, a count of zero or a wrong checksum is refused.

use crate::id::BlockId;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

/// Magic bytes opening a boot profile.
pub const PROFILE_MAGIC: &[u8; 4] = b"BNSP";
/// Boot-profile format version written and read.
pub const PROFILE_VERSION: u8 = 1;
/// Most blocks one profile lists (32 MiB of ids; a boot reads far fewer).
pub const MAX_PROFILE_BLOCKS: usize = 1 << 20;

/// Why bytes are not a boot profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Too short, or not opened by "BNSP".
    #[error("not a bonsai boot profile (bad magic or too short)")]
    BadMagic,
    /// A version this bonsai does not read.
    #[error("unsupported boot-profile version {0} (this bonsai reads version 1)")]
    UnsupportedVersion(u8),
    /// Reserved bytes not zero, a count of 0 or above the maximum, or a length that does
    /// not match the count.
    #[error("boot profile is malformed: {0}")]
    Malformed(&'static str),
    /// The same id twice.
    #[error("boot profile lists block {0} twice")]
    RepeatedBlock(BlockId),
    /// Bytes changed since it was written.
    #[error("boot profile is corrupt: checksum mismatch")]
    ChecksumMismatch,
}

/// Encodes a profile (ids in first-read order, each once, 1..=MAX_PROFILE_BLOCKS).
pub fn encode(ids: &[BlockId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 32 * ids.len() + 32);
    out.extend_from_slice(PROFILE_MAGIC);
    out.extend_from_slice(&[PROFILE_VERSION, 0, 0, 0]);
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(id.as_bytes());
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Decodes and fully validates a profile.
pub fn decode(bytes: &[u8]) -> Result<Vec<BlockId>, ProfileError> {
    if bytes.len() < 12 || &bytes[..4] != PROFILE_MAGIC {
        return Err(ProfileError::BadMagic);
    }
    if bytes[4] != PROFILE_VERSION {
        return Err(ProfileError::UnsupportedVersion(bytes[4]));
    }
    if bytes[5..8] != [0, 0, 0] {
        return Err(ProfileError::Malformed("reserved bytes are not zero"));
    }
    let n = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if n == 0 || n > MAX_PROFILE_BLOCKS {
        return Err(ProfileError::Malformed("block count outside 1..=1048576"));
    }
    if bytes.len() != 12 + 32 * n + 32 {
        return Err(ProfileError::Malformed(
            "length does not match the block count",
        ));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(ProfileError::ChecksumMismatch);
    }
    let mut seen = HashSet::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for raw in body[12..].chunks_exact(32) {
        let id = BlockId(raw.try_into().expect("32 bytes"));
        if !seen.insert(id) {
            return Err(ProfileError::RepeatedBlock(id));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Fewer blocks than this read by a session make it a probe rather than a boot.
const MIN_SESSION_BLOCKS: usize = 8;

/// Records the blocks the first client session that reads at least [`MIN_SESSION_BLOCKS`]
/// reads, in first-read order: tools that only connect to learn the size (`qemu-img create
/// -b nbd+unix://…` for an overlay, `nbdinfo`) before the VM boots do not take its place.
pub(crate) struct Recorder {
    enabled: bool,
    /// 0 before the first session, 1 during it, 2 after.
    phase: AtomicU8,
    seen: Mutex<(HashSet<u32>, Vec<u32>)>,
    ended: AtomicBool,
}

impl Recorder {
    /// A recorder; a disabled one records nothing.
    pub(crate) fn new(enabled: bool) -> Recorder {
        Recorder {
            enabled,
            phase: AtomicU8::new(0),
            seen: Mutex::new((HashSet::new(), Vec::new())),
            ended: AtomicBool::new(false),
        }
    }

    /// A client read these blocks.
    pub(crate) fn touch(&self, blocks: &[u32]) {
        if !self.enabled || self.phase.load(Ordering::Acquire) != 1 {
            return;
        }
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, order) = &mut *g;
        for &i in blocks {
            if order.len() < MAX_PROFILE_BLOCKS && seen.insert(i) {
                order.push(i);
            }
        }
    }

    /// A session began or ended; the first one's end closes the recording.
    pub(crate) fn session(&self, started: bool) {
        match started {
            true => {
                let _ = self
                    .phase
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire);
            }
            false => {
                let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if self.phase.load(Ordering::Acquire) != 1 {
                    return;
                }
                if g.1.len() < MIN_SESSION_BLOCKS {
                    // a probe (`qemu-img create -b`, `nbdinfo`), not a boot: record the next
                    *g = (HashSet::new(), Vec::new());
                    self.phase.store(0, Ordering::Release);
                    return;
                }
                self.phase.store(2, Ordering::Release);
                self.ended.store(true, Ordering::Release);
            }
        }
    }

    /// Once, after the first session ended: the blocks it read, in order.
    pub(crate) fn take_finished(&self) -> Option<Vec<u32>> {
        if !self.ended.swap(false, Ordering::AcqRel) {
            return None;
        }
        let g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        Some(g.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> BlockId {
        BlockId([n; 32])
    }

    #[test]
    fn the_fixture_vector_decodes_to_its_ids() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/profile/v1-three-blocks.bnsp"
        ))
        .unwrap();
        assert_eq!(decode(&bytes).unwrap(), vec![id(1), id(2), id(3)]);
        assert_eq!(encode(&[id(1), id(2), id(3)]), bytes, "the writer changed");
    }

    #[test]
    fn every_fault_is_refused_by_name() {
        let good = encode(&[id(1), id(2)]);
        assert_eq!(decode(&good[..11]), Err(ProfileError::BadMagic));
        let mut v = good.clone();
        v[4] = 2;
        assert_eq!(decode(&v), Err(ProfileError::UnsupportedVersion(2)));
        let mut v = good.clone();
        v[6] = 1;
        assert!(matches!(decode(&v), Err(ProfileError::Malformed(_))));
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(ProfileError::Malformed(_))
        ));
        let mut v = good.clone();
        v[20] ^= 1;
        assert_eq!(decode(&v), Err(ProfileError::ChecksumMismatch));
        assert_eq!(
            decode(&encode(&[id(1), id(1)])),
            Err(ProfileError::RepeatedBlock(id(1)))
        );
        assert!(matches!(
            decode(&encode(&[])),
            Err(ProfileError::Malformed(_))
        ));
    }

    #[test]
    fn only_the_first_session_is_recorded_in_first_read_order() {
        let r = Recorder::new(true);
        r.touch(&[9]);
        r.session(true);
        r.touch(&[3, 1, 4, 5, 6]);
        r.touch(&[1, 2, 8, 10, 4]);
        r.session(true);
        r.session(false);
        r.touch(&[7]);
        r.session(false);
        assert_eq!(r.take_finished(), Some(vec![3, 1, 4, 5, 6, 2, 8, 10]));
        assert_eq!(r.take_finished(), None, "given once");
    }

    #[test]
    fn a_probe_before_the_boot_does_not_take_its_place() {
        let r = Recorder::new(true);
        r.session(true);
        r.touch(&[0]);
        r.session(false);
        assert_eq!(r.take_finished(), None, "a session of one block is a probe");
        r.session(true);
        let boot: Vec<u32> = (20..40).collect();
        r.touch(&boot);
        r.session(false);
        assert_eq!(r.take_finished(), Some(boot));
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(seeds in proptest::collection::hash_set(any::<[u8; 32]>(), 1..50)) {
            let ids: Vec<BlockId> = seeds.into_iter().map(BlockId).collect();
            prop_assert_eq!(decode(&encode(&ids)).unwrap(), ids);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
