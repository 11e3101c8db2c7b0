//! Push, step 4: ask the store which blocks of a batch it lacks and upload only those,
//! on several network threads.
//!
//! Blocks whose id came from the key cache carry their plaintext instead of an object;
//! they are encoded here only if the store lacks them, and the fresh id must equal the
//! cached one — otherwise the entry is wrong, it is removed and the push fails before a
//! recipe exists.

use crate::cache::KeyCache;
use crate::codec::Encoder;
use crate::error::Error;
use crate::id::{BlockId, BlockKey};
use crate::store::BlockStore;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

/// A block seen for the first time in this image.
pub(crate) struct UploadItem {
    pub(crate) id: BlockId,
    pub(crate) key: BlockKey,
    pub(crate) len: u32,
    /// Encoded object, or `None` when the id came from the cache.
    pub(crate) object: Option<Vec<u8>>,
    /// Plaintext, kept only for cache hits (encoded if the store lacks the block).
    pub(crate) plain: Option<Vec<u8>>,
}

impl UploadItem {
    /// Bytes it holds (its object, or the plaintext it will be encoded from).
    pub(crate) fn size(&self) -> usize {
        self.object
            .as_ref()
            .or(self.plain.as_ref())
            .map_or(0, Vec::len)
    }
}

/// What the upload workers sent.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) new_chunks: AtomicU64,
    pub(crate) new_plain: AtomicU64,
    pub(crate) sent: AtomicU64,
}

/// Uploads the blocks of `batch` the store lacks.
pub(crate) fn upload(
    store: &dyn BlockStore,
    batch: &[UploadItem],
    c: &Counters,
    cache: Option<&KeyCache>,
) -> Result<(), Error> {
    let ids: Vec<BlockId> = batch.iter().map(|b| b.id).collect();
    let missing: HashSet<BlockId> = store.missing(&ids)?.into_iter().collect();
    if missing.is_empty() {
        return Ok(());
    }
    let wanted: Vec<&UploadItem> = batch.iter().filter(|b| missing.contains(&b.id)).collect();
    let mut late: Vec<Vec<u8>> = Vec::new();
    let mut enc: Option<Encoder> = None;
    for b in &wanted {
        if let (None, Some(plain)) = (&b.object, &b.plain) {
            let e = enc
                .get_or_insert_with(Encoder::new)
                .encode_with_key(b.key, plain);
            if e.id != b.id {
                let path = cache.map(|c| c.path().to_path_buf()).unwrap_or_default();
                if let Some(cache) = cache {
                    cache.forget(&b.key);
                }
                return Err(Error::WrongCacheEntry { path, id: b.id });
            }
            late.push(e.object);
        }
    }
    let mut late_iter = late.iter();
    let send: Vec<(BlockId, &[u8])> = wanted
        .iter()
        .map(|b| match &b.object {
            Some(o) => (b.id, &o[..]),
            None => (b.id, &late_iter.next().expect("encoded late")[..]),
        })
        .collect();
    store.put(&send)?;
    for (b, (_, obj)) in wanted.iter().zip(&send) {
        c.new_chunks.fetch_add(1, Ordering::Relaxed);
        c.new_plain.fetch_add(b.len as u64, Ordering::Relaxed);
        c.sent.fetch_add(obj.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}
