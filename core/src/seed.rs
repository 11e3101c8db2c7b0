//! Seeds: local files (an older version of the image, say) whose chunks can stand in for
//! blocks of a recipe. A seed is chunked with the recipe's own chunker and matched by
//! key — a key is one BLAKE3 pass, so nothing is compressed or encrypted to find a match.
//! Seeds are read as sparse raw disks: their holes cost nothing.
//!
//! Caveat: a seed may change between this scan and the copy; the pull re-checks each
//! block's key when it copies it and fetches the block instead if it no longer matches.

use crate::batch::DiskBatcher;
use crate::codec::Convergence;
use crate::error::{Error, IoContext};
use crate::id::BlockKey;
use crate::image::{DiskReader, RawDisk};
use crate::recipe::Recipe;
use std::collections::HashMap;
use std::path::PathBuf;

/// Where a block's plaintext can be read locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedHit {
    /// Index of the seed file in the list given.
    pub seed: usize,
    /// Offset in it.
    pub offset: u64,
}

/// Chunks each seed and returns, for every wanted recipe block index found, where to read
/// it (the first seed, first offset wins).
pub fn find_in_seeds(
    recipe: &Recipe,
    conv: &Convergence,
    seeds: &[PathBuf],
    wanted: &HashMap<BlockKey, u32>,
) -> Result<HashMap<u32, SeedHit>, Error> {
    let mut hits = HashMap::new();
    for (seed, path) in seeds.iter().enumerate() {
        let file = std::fs::File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let disk = RawDisk::new(file, len);
        let mut batches = DiskBatcher::new(DiskReader::new(&disk), recipe.header.chunker);
        while let Some(batch) = batches.next_batch().at(path)? {
            let keys = batch.keys(conv);
            let data = batch.pieces.iter().filter(|p| !p.zero);
            for (key, piece) in keys.iter().zip(data) {
                if let Some(&index) = wanted.get(key) {
                    hits.entry(index).or_insert(SeedHit {
                        seed,
                        offset: piece.offset,
                    });
                }
            }
        }
    }
    Ok(hits)
}
