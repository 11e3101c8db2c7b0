//! Push, step 2: give every chunk first seen in this image its block id — from the key
//! cache when it knows the key (no compression, no encryption), else by encoding it on
//! all cores.
//!
//! Keys come from [`ChunkBatch::keys`]; a key determines its block, so dedup within the
//! image is by key. Cached ids are only trusted because [`KeyCache`] entries carry a tag
//! made with the block's own key: an entry can only have been written by someone who held
//! the plaintext, and a swapped or damaged entry reads as a miss.

use crate::batch::ChunkBatch;
use crate::cache::KeyCache;
use crate::codec::Encoder;
use crate::id::{BlockId, BlockKey};
use rayon::prelude::*;
use std::collections::HashMap;

/// The chunks of one batch that are new to the image, with their ids.
pub(crate) struct NewBlocks {
    /// Key → index into `ids`/`objects` (first occurrence within the batch).
    pub(crate) index: HashMap<BlockKey, usize>,
    /// Data-piece number (in the batch) of each new block.
    pub(crate) piece: Vec<usize>,
    /// Id of each new block.
    pub(crate) ids: Vec<BlockId>,
    /// Encoded object, `None` when the id came from the cache.
    pub(crate) objects: Vec<Option<Vec<u8>>>,
    /// How many ids came from the cache.
    pub(crate) cache_hits: u64,
}

/// Finds the chunks of `batch` whose keys the image has not used before (`seen`) and
/// gives each its id.
pub(crate) fn new_blocks(
    batch: &ChunkBatch,
    keys: &[BlockKey],
    seen: impl Fn(&BlockKey) -> bool,
    cache: Option<&KeyCache>,
) -> NewBlocks {
    let mut index: HashMap<BlockKey, usize> = HashMap::new();
    let mut piece: Vec<usize> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if !seen(k) && !index.contains_key(k) {
            index.insert(*k, piece.len());
            piece.push(i);
        }
    }
    let cached: Vec<Option<BlockId>> = match cache {
        Some(c) => c.lookup(&piece.iter().map(|&i| keys[i]).collect::<Vec<_>>()),
        None => vec![None; piece.len()],
    };
    let cache_hits = cached.iter().filter(|c| c.is_some()).count() as u64;
    let (ids, objects): (Vec<BlockId>, Vec<Option<Vec<u8>>>) = piece
        .par_iter()
        .zip(cached.par_iter())
        .map_init(Encoder::new, |enc, (&i, hit)| match hit {
            Some(id) => (*id, None),
            None => {
                let b = enc.encode_with_key(keys[i], batch.data(i));
                (b.id, Some(b.object))
            }
        })
        .unzip();
    NewBlocks {
        index,
        piece,
        ids,
        objects,
        cache_hits,
    }
}
