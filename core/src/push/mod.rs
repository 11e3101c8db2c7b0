//! Push: disk → chunks → keys → ids (cache or encode) → recipe entries → ask the store →
//! upload the missing → register → publish the recipe. Orchestration only; each step is a
//! file named for it, formats live in `chunk`, `codec`, `recipe`.
//!
//! ```text
//! read.rs     reader thread: DiskReader (holes neither read nor hashed) → batches ──▶
//! encode.rs   this thread:   keys (all cores) → new to the image? → id from the
//!                            key cache, or encode (all cores)
//! entries.rs                 recipe entries in image order; first-time blocks ──upload──▶
//! upload.rs   network threads: "which are missing?" → upload those (several in flight)
//! ```
//!
//! Stages are joined by bounded channels, so memory stays bounded whatever the image size
//! (about six batches of [`BATCH_BYTES`] in flight). The recipe is written to an
//! unpublished file and appears at its path only after every upload is acknowledged and
//! the manifest registered: a recipe that exists is usable. An existing recipe is refused
//! before anything is read unless `force`. An interrupted push leaves its uploaded blocks
//! in the store, so a re-run sends only the rest.

mod encode;
mod entries;
mod read;
mod upload;

pub use crate::batch::BATCH_BYTES;

/// Least bytes of new objects in one upload (the last may be smaller): a bucket store
/// writes about one pack per upload, and fewer, larger packs cost fewer requests.
const UPLOAD_BYTES: usize = 12 << 20;
pub use read::{BytesDisk, StreamDisk};

use crate::cache::KeyCache;
use crate::chunk::ChunkerParams;
use crate::codec::{Convergence, OBJECT_VERSION};
use crate::error::{Error, IoContext};
use crate::image::Disk;
use crate::progress::Progress;
use crate::publish::{Pending, PublishOptions};
use crate::recipe::{RecipeHeader, RecipeWriter, SourceFormat};
use crate::stats::PushReport;
use crate::store::BlockStore;
use entries::Entries;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use upload::{Counters, UploadItem};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Chunk boundaries.
    pub chunker: ChunkerParams,
    /// Convergence secret.
    pub convergence: Convergence,
    /// Name the manifest is registered under.
    pub name: String,
    /// What the image was read from (recorded in the recipe).
    pub source_format: SourceFormat,
    /// Concurrent upload requests (default 8: each asks "which are missing?" before it
    /// uploads, so with fewer a long round trip leaves the link idle; bench section 5b).
    pub network_threads: usize,
    /// Key → id cache: known chunks are neither compressed nor encrypted again.
    pub cache: Option<Arc<KeyCache>>,
    /// Replace an existing recipe file.
    pub force: bool,
    /// The image as the user named it, for messages about reading it.
    pub image_path: PathBuf,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            chunker: ChunkerParams::default(),
            convergence: Convergence::public(),
            name: "image".into(),
            source_format: SourceFormat::Raw,
            network_threads: 8,
            cache: None,
            force: false,
            image_path: PathBuf::from("image"),
        }
    }
}

/// Pushes the guest-visible `disk` to `store` and publishes its recipe at `recipe_path`
/// (mode 0600: the recipe is the only key to the image).
pub fn push(
    disk: &dyn Disk,
    store: &dyn BlockStore,
    recipe_path: &Path,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport, Error> {
    let started = Instant::now();
    opts.chunker.validate()?;
    let mut pending = Pending::create(recipe_path, PublishOptions::secret(opts.force))?;
    let header = RecipeHeader {
        chunker: opts.chunker,
        object_version: OBJECT_VERSION,
        source_format: opts.source_format,
        fingerprint: opts.convergence.fingerprint(),
    };
    let file = pending.file().try_clone().at(recipe_path)?;
    let writer = RecipeWriter::new(BufWriter::new(file), &header).at(recipe_path)?;
    let mut report = PushReport {
        name: opts.name.clone(),
        recipe: recipe_path.display().to_string(),
        ..Default::default()
    };
    let mut entries = Entries::new(writer);
    let counters = Counters::default();
    let logical = pipeline(
        disk,
        store,
        opts,
        progress,
        &mut entries,
        &counters,
        &mut report,
    )?;
    report.logical_bytes = logical;
    report.new_chunks = counters.new_chunks.into_inner();
    report.new_plain_bytes = counters.new_plain.into_inner();
    report.sent_bytes = counters.sent.into_inner();
    report.unique_chunks = entries.firsts.len() as u64;
    report.known_chunks = report.unique_chunks - report.new_chunks;

    let ids: Vec<_> = entries.firsts.iter().map(|f| f.1).collect();
    let firsts = entries.firsts.clone();
    // The recipe is finished (not yet visible) first: the version records its image hash.
    let (mut out, image_hash) = entries.finish(logical).at(recipe_path)?;
    out.flush().at(recipe_path)?;
    drop(out);
    report.image_hash = image_hash;
    let registered = store.register_image(&crate::report::Registration {
        name: &opts.name,
        logical_bytes: logical,
        zero_bytes: report.zero_bytes,
        ids: &ids,
        image_hash: Some(image_hash),
    })?;
    report.version = registered.version;
    report.earlier_versions = registered.earlier_versions;
    if let Some(cache) = &opts.cache {
        cache.insert(firsts);
    }
    report.recipe_bytes = pending.commit()?;
    report.wall_seconds = started.elapsed().as_secs_f64();
    report.fill_ratios();
    Ok(report)
}

/// Runs the overlapping stages; returns the bytes of the image covered. The first failure of any
/// stage stops the others and is returned.
fn pipeline<W: Write>(
    disk: &dyn Disk,
    store: &dyn BlockStore,
    opts: &PushOptions,
    progress: &dyn Progress,
    entries: &mut Entries<W>,
    counters: &Counters,
    report: &mut PushReport,
) -> Result<u64, Error> {
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        failed.store(true, Ordering::SeqCst);
        first_error.lock().expect("lock").get_or_insert(e);
    };
    let read = std::thread::scope(|s| {
        let (read_tx, read_rx) = crossbeam_channel::bounded(2);
        let (up_tx, up_rx) = crossbeam_channel::bounded::<Vec<UploadItem>>(2);
        let failed = &failed;
        let reader = s.spawn(move || read::read_batches(disk, opts.chunker, read_tx, failed));
        for _ in 0..opts.network_threads.max(1) {
            let (rx, fail) = (up_rx.clone(), &fail);
            s.spawn(move || {
                for batch in rx {
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Err(e) = upload::upload(store, &batch, counters, opts.cache.as_deref()) {
                        fail(e);
                    }
                }
            });
        }
        drop(up_rx);
        progress.start("push", Some(disk.size()));
        let (mut pending, mut pending_bytes) = (Vec::new(), 0usize);
        for batch in read_rx.iter() {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let keys = batch.keys(&opts.convergence);
            let new = encode::new_blocks(&batch, &keys, |k| entries.seen(k), opts.cache.as_deref());
            let up = match entries.add(&batch, &keys, new, report) {
                Ok(up) => up,
                Err(e) => {
                    let path = PathBuf::from(&report.recipe);
                    fail(Error::Io { path, source: e });
                    break;
                }
            };
            progress.advance(batch.logical_bytes());
            pending_bytes += up.iter().map(upload::UploadItem::size).sum::<usize>();
            pending.extend(up);
            // one upload of at least UPLOAD_BYTES of objects: compressible data makes each
            // read batch's new objects a few MiB, and a bucket store writes one pack per
            // upload it is sent (or joins a few)
            if pending_bytes >= UPLOAD_BYTES && up_tx.send(std::mem::take(&mut pending)).is_err() {
                break;
            }
            if pending.is_empty() {
                pending_bytes = 0;
            }
        }
        if !pending.is_empty() && !failed.load(Ordering::Relaxed) {
            let _ = up_tx.send(pending);
        }
        drop(read_rx);
        drop(up_tx);
        let read = reader.join().expect("reader panicked");
        progress.finish();
        read
    });
    if let Some(e) = first_error.into_inner().expect("lock") {
        return Err(e);
    }
    read.at(&opts.image_path)
}
