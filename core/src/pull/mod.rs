//! Pull: recipe → target → plan → local copies → fetch → verify → publish. Orchestration
//! only; each step is a file named for it.
//!
//! ```text
//! target.rs   what OUT is (partial file, in place, block device); refusals before any
//!             download; hole clearing; the final fsync + rename (or conversion)
//! convert.rs  the verified raw image written as qcow2, vmdk, vhdx or vhd, compared back
//! dry_run.rs  the same checks and probes, nothing written: what a pull would do
//! resume.rs   probe: blocks the target already holds (interrupted pull, older copy)
//! seed.rs     probe: blocks found in --seed files, matched by key (crate::seed)
//! plan.rs     PullPlan: each distinct block's source, and the store's fetch batches
//! local.rs    copy blocks from the target itself and from seeds to every use
//! fetch.rs    fetch batches, several in flight; verify each object; write every use
//! verify.rs   beside the fetch: every block landed, holes read zero; recipe v1: every
//!             extent read back and the whole-image BLAKE3
//! ```
//!
//! A failed pull never leaves a file at OUT. Its error says what was left: a partial file
//! with the verified blocks (a re-run resumes) after a network or I/O failure, nothing
//! after a verification failure. In place, OUT is partly written and the error says so.

pub mod convert;
mod dry_run;
mod fetch;
mod local;
pub mod plan;
pub(crate) mod resume;
pub mod target;
mod verify;

pub use dry_run::{dry_run, PullDryRun};
pub use plan::{PullPlan, Source};
pub use target::{partial_path, Target, TargetKind};

use crate::codec::Convergence;
use crate::error::Error;
use crate::progress::Progress;
use crate::recipe::{ImageCheck, Recipe, RecipeError};
use crate::stats::PullReport;
use crate::store::{limits, BlockStore};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Turns a verified raw image into another format: the seam for converted outputs
/// (qcow2, vmdk, ...). The pull rebuilds and verifies raw in its partial file, calls
/// `convert`, then removes the partial file.
pub trait Convert: Send + Sync + std::fmt::Debug {
    /// Writes `out` from the verified raw image at `raw`, published complete or not at
    /// all (see [`crate::publish`]), replacing an existing `out` only if `force`.
    fn convert(&self, raw: &Path, out: &Path, force: bool) -> Result<(), Error>;
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Convergence secret the image was pushed with.
    pub convergence: Convergence,
    /// Local files to take matching blocks from.
    pub seeds: Vec<PathBuf>,
    /// Concurrent download requests.
    pub network_threads: usize,
    /// Key → id cache to fill with the verified blocks (so a re-push here is cheap).
    pub cache: Option<Arc<crate::cache::KeyCache>>,
    /// Write straight into OUT (always so for block devices): blocks already there are
    /// kept, no temporary file, no rename.
    pub in_place: bool,
    /// In place, make the image's holes read as zeros (discard / punch / write zeros).
    pub discard_holes: bool,
    /// Replace an existing OUT.
    pub force: bool,
    /// Convert the verified raw image into OUT (not with `in_place`).
    pub convert: Option<Arc<dyn Convert>>,
    /// The recipe file, for messages about the recipe.
    pub recipe_path: PathBuf,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            convergence: Convergence::public(),
            seeds: Vec::new(),
            network_threads: 4,
            cache: None,
            in_place: false,
            discard_holes: false,
            force: false,
            convert: None,
            recipe_path: PathBuf::from("recipe"),
        }
    }
}

/// Reads and validates the recipe at `path`; errors name the path.
pub fn open_recipe(path: &Path) -> Result<Recipe, Error> {
    Recipe::open(path).map_err(|source| Error::Recipe {
        path: path.to_path_buf(),
        source,
    })
}

/// Rebuilds the image described by `recipe` at `out`, verified.
pub fn pull(
    recipe: &Recipe,
    store: &dyn BlockStore,
    out: &Path,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<PullReport, Error> {
    let started = Instant::now();
    check_recipe(recipe, opts)?;
    let target = Target::open(out, recipe, opts)?;
    let result = execute(recipe, store, &target, opts, progress);
    progress.finish();
    let mut report = match result {
        Ok(r) => r,
        Err(e) => return Err(target.fail(e)),
    };
    target.finish(opts.force, opts.convert.as_deref())?;
    report.output = out.display().to_string();
    report.verified = true;
    if let Some(cache) = &opts.cache {
        cache.insert(recipe.blocks.iter().map(|b| (b.key, b.id)));
    }
    report.wall_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The checks before anything else: the recipe was made with this convergence secret, and
/// (version 2) its extents hash to what it says.
pub(crate) fn check_recipe(recipe: &Recipe, opts: &PullOptions) -> Result<(), Error> {
    let conv = &opts.convergence;
    if recipe.header.fingerprint != conv.fingerprint() {
        return Err(Error::WrongSecret {
            recipe: hex::encode(recipe.header.fingerprint),
            ours: hex::encode(conv.fingerprint()),
        });
    }
    if let ImageCheck::Extents(h) = recipe.image_check() {
        if recipe.extents_hash() != h {
            return Err(Error::Recipe {
                path: opts.recipe_path.clone(),
                source: RecipeError::ExtentsHashMismatch,
            });
        }
    }
    Ok(())
}

/// Probes, plans, copies, fetches and verifies; the target then holds the image.
fn execute(
    recipe: &Recipe,
    store: &dyn BlockStore,
    target: &Target,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<PullReport, Error> {
    let conv = &opts.convergence;
    let uses = plan::uses_of(recipe);
    let in_target = match target.may_hold_data() {
        true => resume::blocks_in_target(recipe, conv, target.file(), &uses),
        false => Vec::new(),
    };
    let seeds = if opts.seeds.is_empty() {
        HashMap::new()
    } else {
        let mut wanted: HashMap<_, u32> = recipe
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.key, i as u32))
            .collect();
        in_target.iter().for_each(|&i| {
            wanted.remove(&recipe.blocks[i as usize].key);
        });
        crate::seed::find_in_seeds(recipe, conv, &opts.seeds, &wanted)?
    };
    let plan = PullPlan::new(recipe, uses, &in_target, &seeds, limits::BATCH_BYTES, 4096);
    target.clear_holes(recipe, opts.discard_holes)?;
    progress.start("pull", Some(plan.bytes_to_write(recipe)));
    let file = (target.file(), target.path());
    let local = local::copy_local(recipe, conv, &plan, file, &opts.seeds, progress)?;
    let mut batches = plan.batches.clone();
    if !local.refetch.is_empty() {
        batches.push(local.refetch.clone());
    }
    let written = verify::Written::new(recipe.blocks.len());
    let refetch: std::collections::HashSet<u32> = local.refetch.iter().copied().collect();
    written.mark(plan.local().map(|l| l.0).filter(|i| !refetch.contains(i)));
    let (blocks, bytes) = fetch_and_verify(
        recipe, store, target, opts, progress, &plan, batches, &written,
    )?;
    Ok(PullReport {
        logical_bytes: recipe.logical_size,
        zero_bytes: recipe.hole_bytes(),
        unique_chunks: recipe.blocks.len() as u64,
        resumed_bytes: local.resumed,
        seeded_bytes: local.seeded,
        fetched_blocks: blocks,
        fetched_bytes: bytes,
        ..Default::default()
    })
}

/// Verifies a target that holds every block (an export's filled LOCAL) exactly as a pull
/// verifies its own: every extent read back and its key checked, every hole zero.
pub(crate) fn verify_target(
    recipe: &Recipe,
    target: &Target,
    conv: &Convergence,
) -> Result<(), Error> {
    let written = verify::Written::new(recipe.blocks.len());
    written.mark(0..recipe.blocks.len() as u32);
    let check = verify::Check {
        recipe,
        conv,
        file: target.file(),
        path: target.path(),
        read_blocks: true,
    };
    verify::verify_in_order(&check, &written, &AtomicBool::new(false)).map(|_| ())
}

/// Runs the fetch workers and the in-order verifier together; returns the blocks and
/// object bytes fetched.
#[allow(clippy::too_many_arguments)]
fn fetch_and_verify(
    recipe: &Recipe,
    store: &dyn BlockStore,
    target: &Target,
    opts: &PullOptions,
    progress: &dyn Progress,
    plan: &PullPlan,
    batches: Vec<Vec<u32>>,
    written: &verify::Written,
) -> Result<(u64, u64), Error> {
    let failed = AtomicBool::new(false);
    let fetch = fetch::Fetch {
        recipe,
        store,
        conv: &opts.convergence,
        file: target.file(),
        path: target.path(),
        uses: &plan.uses,
        progress,
        written,
        failed: &failed,
        blocks: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let check = verify::Check {
        recipe,
        conv: &opts.convergence,
        file: target.file(),
        path: target.path(),
        read_blocks: verify::reads_blocks_back(recipe),
    };
    std::thread::scope(|s| {
        s.spawn(|| fetch.run(batches, opts.network_threads));
        if let Err(e) = verify::verify_in_order(&check, written, &failed) {
            fetch.fail(e);
        }
    });
    if let Some(e) = fetch
        .first_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        return Err(e);
    }
    Ok((fetch.blocks.into_inner(), fetch.bytes.into_inner()))
}
