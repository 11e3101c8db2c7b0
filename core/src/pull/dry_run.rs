//! Pull, dry run: what a pull would do — the blocks it would take from OUT's partial file
//! (or OUT itself, in place or a device), from seeds and from the store, and whether the
//! store holds the latter — with the same checks and probes as the pull, and nothing
//! written: the target is opened read-only if it exists, never created.

use super::plan::{uses_of, PullPlan, Source};
use super::{check_recipe, PullOptions};
use crate::error::{Error, IoContext};
use crate::recipe::Recipe;
use crate::store::{limits, ReadStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What `bonsai pull --dry-run --json` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PullDryRun {
    /// Virtual size of the image.
    pub logical_bytes: u64,
    /// Bytes of it that are holes (nothing to fetch or write).
    pub zero_bytes: u64,
    /// Distinct blocks in the recipe.
    pub unique_chunks: u64,
    /// The file an interrupted pull left (or OUT, in place), whose verified blocks are
    /// kept; `None` when there is none.
    pub resume_from: Option<String>,
    /// Blocks already in that file.
    pub resumed_blocks: u64,
    /// Their plaintext bytes.
    pub resumed_bytes: u64,
    /// Blocks found in `--seed` files.
    pub seeded_blocks: u64,
    /// Their plaintext bytes.
    pub seeded_bytes: u64,
    /// Blocks to fetch from the store.
    pub fetch_blocks: u64,
    /// Their plaintext bytes.
    pub fetch_bytes: u64,
    /// Batch requests they take.
    pub fetch_requests: u64,
    /// Blocks to fetch that the store does not hold: the pull would fail on them.
    pub missing_blocks: u64,
    /// Their plaintext bytes.
    pub missing_bytes: u64,
}

/// The dry run of pulling `recipe` from `store` to `out` with `opts`.
pub fn dry_run(
    recipe: &Recipe,
    store: &dyn ReadStore,
    out: &Path,
    opts: &PullOptions,
) -> Result<PullDryRun, Error> {
    check_recipe(recipe, opts)?;
    let resume = resumable(out, recipe, opts)?;
    let uses = uses_of(recipe);
    let in_target = match &resume {
        Some(path) => {
            let file = std::fs::File::open(path).at(path)?;
            super::resume::blocks_in_target(recipe, &opts.convergence, &file, &uses)
        }
        None => Vec::new(),
    };
    let mut wanted: HashMap<_, u32> = (0..recipe.blocks.len() as u32)
        .map(|i| (recipe.blocks[i as usize].key, i))
        .collect();
    in_target.iter().for_each(|&i| {
        wanted.remove(&recipe.blocks[i as usize].key);
    });
    let seeds = match opts.seeds.is_empty() {
        true => HashMap::new(),
        false => crate::seed::find_in_seeds(recipe, &opts.convergence, &opts.seeds, &wanted)?,
    };
    let plan = PullPlan::new(recipe, uses, &in_target, &seeds, limits::BATCH_BYTES, 4096);
    let mut run = PullDryRun {
        logical_bytes: recipe.logical_size,
        zero_bytes: recipe.hole_bytes(),
        unique_chunks: recipe.blocks.len() as u64,
        resume_from: resume.map(|p| p.display().to_string()),
        fetch_requests: plan.batches.len() as u64,
        ..Default::default()
    };
    let mut fetched = Vec::new();
    for (i, source) in plan.sources.iter().enumerate() {
        let len = recipe.blocks[i].len as u64;
        let (blocks, bytes) = match source {
            Source::Target { .. } => (&mut run.resumed_blocks, &mut run.resumed_bytes),
            Source::Seed(_) => (&mut run.seeded_blocks, &mut run.seeded_bytes),
            Source::Store => {
                fetched.push(i);
                (&mut run.fetch_blocks, &mut run.fetch_bytes)
            }
        };
        *blocks += 1;
        *bytes += len;
    }
    count_missing(recipe, store, &fetched, &mut run)?;
    Ok(run)
}

/// The file a pull to `out` would resume from, checked as the pull checks OUT.
fn resumable(out: &Path, recipe: &Recipe, opts: &PullOptions) -> Result<Option<PathBuf>, Error> {
    let meta = std::fs::metadata(out).ok();
    if meta.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Error::IsDirectory {
            path: out.to_path_buf(),
        });
    }
    use std::os::unix::fs::FileTypeExt;
    if opts.in_place
        || meta
            .as_ref()
            .is_some_and(|m| m.file_type().is_block_device())
    {
        return Ok(meta.map(|_| out.to_path_buf()));
    }
    crate::publish::check_destination(out, opts.force)?;
    let partial = super::partial_path(out, recipe);
    let same_size = std::fs::symlink_metadata(&partial)
        .is_ok_and(|m| m.is_file() && m.len() == recipe.logical_size);
    Ok(same_size.then_some(partial))
}

/// Asks the store which of the blocks to fetch (indices into the recipe) it lacks.
fn count_missing(
    recipe: &Recipe,
    store: &dyn ReadStore,
    fetched: &[usize],
    run: &mut PullDryRun,
) -> Result<(), Error> {
    let by_id: HashMap<_, u64> = fetched
        .iter()
        .map(|&i| (recipe.blocks[i].id, recipe.blocks[i].len as u64))
        .collect();
    for part in fetched.chunks(limits::MAX_IDS_PER_QUERY) {
        let ids: Vec<_> = part.iter().map(|&i| recipe.blocks[i].id).collect();
        for id in store.missing(&ids)? {
            run.missing_blocks += 1;
            run.missing_bytes += by_id.get(&id).copied().unwrap_or(0);
        }
    }
    Ok(())
}
