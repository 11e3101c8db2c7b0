//! Pull, probing the target: which blocks does it already hold at their first use? An
//! interrupted pull left them in its partial file; a target written in place may hold an
//! older copy of the image. Each candidate is read and its key re-derived, on all cores;
//! only blocks whose key matches count.

use crate::codec::Convergence;
use crate::recipe::Recipe;
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Indices of the blocks `file` already holds at their first use (`uses[i][0]`).
pub(crate) fn blocks_in_target(
    recipe: &Recipe,
    conv: &Convergence,
    file: &File,
    uses: &[Vec<u64>],
) -> Vec<u32> {
    (0..recipe.blocks.len() as u32)
        .into_par_iter()
        .filter(|&i| {
            let b = &recipe.blocks[i as usize];
            let mut buf = vec![0u8; b.len as usize];
            file.read_exact_at(&mut buf, uses[i as usize][0]).is_ok() && conv.key_for(&buf) == b.key
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;

    #[test]
    fn finds_only_blocks_whose_key_matches() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let disk = crate::push::StreamDisk::new(
            Box::new(std::io::Cursor::new(image.clone())),
            image.len() as u64,
        );
        let rp = dir.path().join("r");
        let opts = crate::PushOptions {
            chunker: crate::ChunkerParams::fastcdc(4096),
            ..Default::default()
        };
        crate::push(&disk, &MemStore::new(), &rp, &opts, &crate::NoProgress).unwrap();
        let recipe = Recipe::open(&rp).unwrap();
        let uses = super::super::plan::uses_of(&recipe);
        let mut damaged = image.clone();
        let victim = uses[1][0] as usize;
        damaged[victim] ^= 1;
        let t = dir.path().join("t");
        std::fs::write(&t, &damaged).unwrap();
        let found = blocks_in_target(
            &recipe,
            &Convergence::public(),
            &File::open(&t).unwrap(),
            &uses,
        );
        assert_eq!(found.len(), recipe.blocks.len() - 1);
        assert!(!found.contains(&1));
    }
}
