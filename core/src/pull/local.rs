//! Pull, local sources: copy the blocks the plan found in the target itself (at their
//! first use) or in a seed file to every offset that uses them.
//!
//! Each block is re-read and its key re-derived before it is written: a seed may have
//! changed since it was scanned. A block that no longer matches is returned, to be
//! fetched from the store instead.

use super::plan::{PullPlan, Source};
use crate::codec::Convergence;
use crate::error::{Error, IoContext};
use crate::progress::Progress;
use crate::recipe::Recipe;
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What the local copy did.
#[derive(Debug, Default)]
pub(crate) struct LocalCopy {
    /// Plaintext bytes of blocks found in the target.
    pub(crate) resumed: u64,
    /// Plaintext bytes of blocks copied from seeds.
    pub(crate) seeded: u64,
    /// Blocks whose seed no longer matched: fetch them.
    pub(crate) refetch: Vec<u32>,
}

/// Copies every block with a local source to all its uses in `file`.
pub(crate) fn copy_local(
    recipe: &Recipe,
    conv: &Convergence,
    plan: &PullPlan,
    (file, path): (&File, &Path),
    seeds: &[PathBuf],
    progress: &dyn Progress,
) -> Result<LocalCopy, Error> {
    let seed_files: Vec<File> = seeds
        .iter()
        .map(|p| File::open(p).at(p))
        .collect::<Result<_, _>>()?;
    let local: Vec<(u32, Source)> = plan.local().collect();
    let done: Vec<(u32, Source, bool)> = local
        .par_iter()
        .map(|&(i, source)| {
            let b = &recipe.blocks[i as usize];
            let uses = &plan.uses[i as usize];
            let mut buf = vec![0u8; b.len as usize];
            let (from, at) = match source {
                Source::Target { offset } => (file, offset),
                Source::Seed(hit) => (&seed_files[hit.seed], hit.offset),
                Source::Store => unreachable!("plan.local() yields local sources only"),
            };
            let read = from.read_exact_at(&mut buf, at);
            if read.is_err() || conv.key_for(&buf) != b.key {
                return Ok((i, source, false));
            }
            for &o in uses {
                if !(matches!(source, Source::Target { .. }) && o == at) {
                    file.write_all_at(&buf, o).at(path)?;
                }
            }
            progress.advance(b.len as u64 * uses.len() as u64);
            Ok((i, source, true))
        })
        .collect::<Result<_, Error>>()?;
    let mut out = LocalCopy::default();
    for (i, source, ok) in done {
        let len = recipe.blocks[i as usize].len as u64;
        match (source, ok) {
            (_, false) => out.refetch.push(i),
            (Source::Target { .. }, true) => out.resumed += len,
            (_, true) => out.seeded += len,
        }
    }
    Ok(out)
}
