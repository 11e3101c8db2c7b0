//! Seeds: local files (an older version of the image, say) whose chunks can stand in for
//! blocks of a recipe. A seed is chunked with the recipe's own chunker and matched by
//! key — a key is one BLAKE3 pass, so nothing is compressed or encrypted to find a match.

use crate::chunk::Chunker;
use crate::codec::Convergence;
use crate::error::{Error, IoContext};
use crate::id::BlockKey;
use crate::recipe::Recipe;
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
    let mut chunks = Chunker::new(file, recipe.header.chunker);
    while let Some(c) = chunks.next_chunk().at(path)? {
        if c.is_zero() {
            continue;
        }
        let key = conv.key_for(c.data);
        if let Some(&index) = wanted.get(&key) {
            hits.entry(index).or_insert_with(|| SeedHit {
                path: path.to_path_buf(),
                offset: c.offset,
            });
        }
    }
    Ok(())
}
