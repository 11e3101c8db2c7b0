//! Pull, the plan: for each distinct block of the recipe, where its bytes come from —
//! already in the target (an interrupted pull, or an older copy written in place), a seed
//! file at an offset, or the store — and the store's share cut into fetch batches.
//!
//! Pure: computed from the recipe and what the probes found, before any byte is written,
//! and unit-tested without files.

use crate::recipe::{Extent, Recipe};
use crate::seed::SeedHit;
use std::collections::HashMap;

/// Where one distinct block's plaintext comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The target already holds it at this offset (its first use).
    Target {
        /// Offset in the target.
        offset: u64,
    },
    /// A seed file holds it.
    Seed(SeedHit),
    /// Fetched from the store.
    Store,
}

/// What a pull will do, block by block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPlan {
    /// Offsets at which each distinct block is used, in image order.
    pub uses: Vec<Vec<u64>>,
    /// The source of each distinct block.
    pub sources: Vec<Source>,
    /// Blocks to fetch from the store, in batches of about `batch_bytes`.
    pub batches: Vec<Vec<u32>>,
}

/// Offsets at which each distinct block of `recipe` is used.
pub fn uses_of(recipe: &Recipe) -> Vec<Vec<u64>> {
    let mut uses: Vec<Vec<u64>> = vec![Vec::new(); recipe.blocks.len()];
    for (off, _, e) in recipe.extents_with_offsets() {
        if let Extent::Block { index } = e {
            uses[*index as usize].push(off);
        }
    }
    uses
}

impl PullPlan {
    /// The plan for `recipe`, given the blocks found already in the target at their first
    /// use (`in_target`) and in seeds. The target wins over a seed (nothing to copy at the
    /// first use), a seed over the store. Batches hold at most `batch_bytes` of plaintext
    /// (a block larger than that alone) and `batch_blocks` blocks.
    pub fn new(
        recipe: &Recipe,
        uses: Vec<Vec<u64>>,
        in_target: &[u32],
        seeds: &HashMap<u32, SeedHit>,
        batch_bytes: usize,
        batch_blocks: usize,
    ) -> PullPlan {
        let mut sources = vec![Source::Store; recipe.blocks.len()];
        for (&i, hit) in seeds {
            sources[i as usize] = Source::Seed(*hit);
        }
        for &i in in_target {
            sources[i as usize] = Source::Target {
                offset: uses[i as usize][0],
            };
        }
        let mut batches: Vec<Vec<u32>> = Vec::new();
        let mut cur: Vec<u32> = Vec::new();
        let mut cur_bytes = 0usize;
        for (i, s) in sources.iter().enumerate() {
            if *s != Source::Store {
                continue;
            }
            let len = recipe.blocks[i].len as usize;
            if !cur.is_empty() && (cur_bytes + len > batch_bytes || cur.len() >= batch_blocks) {
                batches.push(std::mem::take(&mut cur));
                cur_bytes = 0;
            }
            cur.push(i as u32);
            cur_bytes += len;
        }
        if !cur.is_empty() {
            batches.push(cur);
        }
        PullPlan {
            uses,
            sources,
            batches,
        }
    }

    /// Plaintext bytes the pull writes: every use of every block.
    pub fn bytes_to_write(&self, recipe: &Recipe) -> u64 {
        recipe
            .blocks
            .iter()
            .zip(&self.uses)
            .map(|(b, u)| b.len as u64 * u.len() as u64)
            .sum()
    }

    /// Blocks with a local source (target or seed), with that source.
    pub fn local(&self) -> impl Iterator<Item = (u32, Source)> + '_ {
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != Source::Store)
            .map(|(i, s)| (i as u32, *s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkerParams;
    use crate::id::{BlockId, BlockKey, ImageHash};
    use crate::recipe::{BlockRef, RecipeHeader, SourceFormat};

    /// Blocks of the given lengths, used in the order of `extents` (None = a hole of 100).
    fn recipe(lens: &[u32], extents: &[Option<u32>]) -> Recipe {
        let blocks: Vec<BlockRef> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| BlockRef {
                id: BlockId([i as u8; 32]),
                key: BlockKey([i as u8; 32]),
                len,
            })
            .collect();
        let extents: Vec<Extent> = extents
            .iter()
            .map(|e| match e {
                Some(index) => Extent::Block { index: *index },
                None => Extent::Hole { len: 100 },
            })
            .collect();
        let mut r = Recipe {
            version: 2,
            header: RecipeHeader {
                chunker: ChunkerParams::fastcdc(4096),
                object_version: 1,
                source_format: SourceFormat::Raw,
                fingerprint: [0; 8],
            },
            logical_size: 0,
            image_hash: ImageHash([0; 32]),
            blocks,
            extents,
        };
        r.logical_size = r.extents_with_offsets().map(|(_, l, _)| l).sum();
        r
    }

    #[test]
    fn uses_follow_the_extents() {
        let r = recipe(&[10, 20], &[Some(0), None, Some(1), Some(0)]);
        assert_eq!(uses_of(&r), vec![vec![0, 130], vec![110]]);
    }

    #[test]
    fn target_beats_seed_beats_store() {
        let r = recipe(&[10, 20, 30], &[Some(0), Some(1), Some(2)]);
        let hit = SeedHit { seed: 1, offset: 7 };
        let seeds = HashMap::from([(0, hit), (1, hit)]);
        let p = PullPlan::new(&r, uses_of(&r), &[1], &seeds, 1 << 20, 100);
        assert_eq!(
            p.sources,
            vec![
                Source::Seed(hit),
                Source::Target { offset: 10 },
                Source::Store
            ]
        );
        assert_eq!(p.batches, vec![vec![2]]);
        assert_eq!(p.local().count(), 2);
        assert_eq!(p.bytes_to_write(&r), 60);
    }

    #[test]
    fn batches_respect_bytes_and_counts() {
        let r = recipe(
            &[40, 40, 40, 200, 10],
            &[Some(0), Some(1), Some(2), Some(3), Some(4)],
        );
        let p = PullPlan::new(&r, uses_of(&r), &[], &HashMap::new(), 100, 100);
        assert_eq!(p.batches, vec![vec![0, 1], vec![2], vec![3], vec![4]]);
        let p = PullPlan::new(&r, uses_of(&r), &[], &HashMap::new(), 1000, 2);
        assert_eq!(p.batches, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn nothing_to_fetch_when_all_local() {
        let r = recipe(&[10, 20], &[Some(0), Some(1), Some(0)]);
        let p = PullPlan::new(&r, uses_of(&r), &[0, 1], &HashMap::new(), 100, 100);
        assert!(p.batches.is_empty());
        let empty = recipe(&[], &[None]);
        let p = PullPlan::new(&empty, uses_of(&empty), &[], &HashMap::new(), 100, 100);
        assert!(p.batches.is_empty() && p.sources.is_empty());
    }
}
