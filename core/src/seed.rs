//! Seeds: local files (an older version of the image, say) whose chunks can stand in for
//! blocks of a recipe. A seed is chunked with the recipe's own chunker and matched by
//! key — a key is one BLAKE3 pass, so nothing is compressed or encrypted to find a match.

use crate::chunk::Chunker;
use crate::codec::Convergence;
use crate::error::{Error, IoContext};
use crate::id::BlockKey;
use crate::image::SparseReader;
use crate::recipe::Recipe;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a block's plaintext can be read locally.
#[derive(Debug, Clone)]
pub struct SeedHit {
    /// The seed file.
    pub path: PathBuf,
    /// Offset in it.
    pub offset: u64,
}

/// Chunks each seed and returns, for every recipe block index found, where to read it.
pub fn find_in_seeds(
    recipe: &Recipe,
    conv: &Convergence,
    seeds: &[PathBuf],
    wanted: &HashMap<BlockKey, u32>,
) -> Result<HashMap<u32, SeedHit>, Error> {
    let mut hits = HashMap::new();
    for path in seeds {
        scan(path, recipe, conv, wanted, &mut hits)?;
    }
    Ok(hits)
}

fn scan(
    path: &Path,
    recipe: &Recipe,
    conv: &Convergence,
    wanted: &HashMap<BlockKey, u32>,
    hits: &mut HashMap<u32, SeedHit>,
) -> Result<(), Error> {
    let file = std::fs::File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let mut chunks = Chunker::new(SparseReader::new(file, len), recipe.header.chunker);
    // Keys are computed on all cores, a batch of chunks at a time.
    let mut data: Vec<u8> = Vec::with_capacity(BATCH + recipe.header.chunker.max as usize);
    let mut spans: Vec<(u64, usize)> = Vec::new();
    let mut flush = |data: &mut Vec<u8>, spans: &mut Vec<(u64, usize)>| {
        let mut slices = Vec::with_capacity(spans.len());
        let mut pos = 0;
        for &(_, l) in spans.iter() {
            slices.push(&data[pos..pos + l]);
            pos += l;
        }
        let keys: Vec<BlockKey> = slices.par_iter().map(|s| conv.key_for(s)).collect();
        for (key, &(offset, _)) in keys.iter().zip(spans.iter()) {
            if let Some(&index) = wanted.get(key) {
                hits.entry(index).or_insert_with(|| SeedHit {
                    path: path.to_path_buf(),
                    offset,
                });
            }
        }
        data.clear();
        spans.clear();
    };
    while let Some(c) = chunks.next_chunk().at(path)? {
        if c.is_zero() {
            continue;
        }
        data.extend_from_slice(c.data);
        spans.push((c.offset, c.data.len()));
        if data.len() >= BATCH {
            flush(&mut data, &mut spans);
        }
    }
    flush(&mut data, &mut spans);
    Ok(())
}

const BATCH: usize = 8 << 20;
