//! Push: image → chunks → (holes skipped) → keys → encode → ask the store → upload the
//! missing → recipe. Orchestration only; formats live in `chunk`, `codec`, `recipe`.
//!
//! Three stages overlap, joined by bounded channels so memory stays bounded whatever the
//! image size (about six batches of [`BATCH_BYTES`] in flight):
//!
//! ```text
//! reader thread:  read + BLAKE3 of the image + chunk  ──batch──▶
//! this thread:    keys (all cores) → dedup within image → encode new (all cores) → recipe
//!                                                      ──upload batch──▶
//! network threads: "which are missing?" → upload those            (several in flight)
//! ```
//!
//! The recipe is written to a temporary file and renamed into place only after every
//! upload is acknowledged and the manifest is registered: a recipe that exists is usable.
//! An interrupted push leaves its uploaded blocks in the store, so a re-run sends only the
//! rest (the store answers "already have" for them).

use crate::cache::KeyCache;
use crate::chunk::{Chunker, ChunkerParams};
use crate::codec::{Convergence, Encoder, OBJECT_VERSION};
use crate::error::{Error, IoContext};
use crate::id::{BlockId, BlockKey, ImageHash};
use crate::progress::Progress;
use crate::recipe::{RecipeHeader, RecipeWriter, SourceFormat};
use crate::stats::PushReport;
use crate::store::BlockStore;
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Plaintext bytes per batch handed between stages.
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;

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
    /// Concurrent upload requests.
    pub network_threads: usize,
    /// Key → id cache: known chunks are neither compressed nor encrypted again.
    pub cache: Option<Arc<KeyCache>>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            chunker: ChunkerParams::default(),
            convergence: Convergence::public(),
            name: "image".into(),
            source_format: SourceFormat::Raw,
            network_threads: 4,
            cache: None,
        }
    }
}

/// Chunks of one batch: (offset, length, is_zero); non-zero data lies packed in `data`.
struct ReadBatch {
    spans: Vec<(u64, u32, bool)>,
    data: Vec<u8>,
}

/// A block seen for the first time in this image.
struct UploadItem {
    id: BlockId,
    key: BlockKey,
    len: u32,
    /// Encoded object, or `None` when the id came from the cache (encoded only if the
    /// store turns out to lack it, from `plain`).
    object: Option<Vec<u8>>,
    plain: Option<Vec<u8>>,
}

/// First-time blocks of a batch, bound for the store.
struct UploadBatch {
    blocks: Vec<UploadItem>,
}

/// Hashes everything read through it: the whole-image hash costs no extra pass.
struct HashingRead<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> Read for HashingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Large reads are hashed on all cores: zero-heavy disks make hashing the bottleneck.
        if n >= 1 << 20 {
            self.hasher.update_rayon(&buf[..n]);
        } else {
            self.hasher.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

#[derive(Default)]
struct Counters {
    new_chunks: AtomicU64,
    new_plain: AtomicU64,
    sent: AtomicU64,
}

/// Pushes `image` (its logical bytes) to `store`, writing the recipe to `recipe_path`.
pub fn push(
    image: impl Read + Send,
    store: &dyn BlockStore,
    recipe_path: &Path,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport, Error> {
    let started = Instant::now();
    opts.chunker
        .validate()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let tmp_path = temp_beside(recipe_path);
    let tmp = std::fs::File::create(&tmp_path).at(&tmp_path)?;
    let cleanup = RemoveOnDrop(Some(tmp_path.clone()));
    let header = RecipeHeader {
        chunker: opts.chunker,
        object_version: OBJECT_VERSION,
        source_format: opts.source_format,
        fingerprint: opts.convergence.fingerprint(),
    };
    let mut recipe = RecipeWriter::new_v1(io::BufWriter::new(tmp), &header).at(&tmp_path)?;
    let mut report = PushReport {
        name: opts.name.clone(),
        recipe: recipe_path.display().to_string(),
        ..Default::default()
    };
    let mut firsts: Vec<(BlockKey, BlockId)> = Vec::new();
    let counters = Counters::default();
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        failed.store(true, Ordering::SeqCst);
        first_error.lock().expect("lock").get_or_insert(e);
    };

    let image_hash = std::thread::scope(|s| -> Result<(ImageHash, u64), Error> {
        let (read_tx, read_rx) = crossbeam_channel::bounded::<ReadBatch>(2);
        let (up_tx, up_rx) = crossbeam_channel::bounded::<UploadBatch>(2);
        let chunker = opts.chunker;
        let failed_ref = &failed;
        let reader = s.spawn(move || -> io::Result<(ImageHash, u64)> {
            let mut src = HashingRead {
                inner: image,
                hasher: blake3::Hasher::new(),
                bytes: 0,
            };
            let mut chunks = Chunker::new(&mut src, chunker);
            let mut batch = new_batch();
            while let Some(c) = chunks.next_chunk()? {
                if failed_ref.load(Ordering::Relaxed) {
                    break;
                }
                let zero = c.is_zero();
                batch.spans.push((c.offset, c.data.len() as u32, zero));
                if !zero {
                    batch.data.extend_from_slice(c.data);
                }
                if batch.data.len() >= BATCH_BYTES || batch.spans.len() >= 65_536 {
                    let full = std::mem::replace(&mut batch, new_batch());
                    if read_tx.send(full).is_err() {
                        break;
                    }
                }
            }
            if !batch.spans.is_empty() {
                let _ = read_tx.send(batch);
            }
            drop(chunks);
            Ok((ImageHash(*src.hasher.finalize().as_bytes()), src.bytes))
        });

        let mut workers = Vec::new();
        for _ in 0..opts.network_threads.max(1) {
            let rx = up_rx.clone();
            let counters = &counters;
            let fail = &fail;
            let failed = &failed;
            workers.push(s.spawn(move || {
                for batch in rx {
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Err(e) = upload(store, &batch, counters, opts.cache.as_deref()) {
                        fail(e);
                    }
                }
            }));
        }
        drop(up_rx);

        progress.start("push", None);
        for batch in read_rx.iter() {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let upload = match encode_batch(&batch, opts, &mut recipe, &mut firsts, &mut report) {
                Ok(u) => u,
                Err(e) => {
                    fail(e);
                    break;
                }
            };
            let batch_bytes: u64 = batch.spans.iter().map(|s| s.1 as u64).sum();
            progress.advance(batch_bytes);
            if !upload.blocks.is_empty() && up_tx.send(upload).is_err() {
                break;
            }
        }
        drop(read_rx);
        drop(up_tx);
        for w in workers {
            w.join().expect("upload worker panicked");
        }
        progress.finish();
        let read = reader.join().expect("reader panicked");
        read.map_err(|e| Error::Io {
            path: PathBuf::from(&opts.name),
            source: e,
        })
    });
    if let Some(e) = first_error.into_inner().expect("lock") {
        return Err(e);
    }
    let (image_hash, logical) = image_hash?;
    report.logical_bytes = logical;
    report.image_hash = image_hash;
    report.new_chunks = counters.new_chunks.into_inner();
    report.new_plain_bytes = counters.new_plain.into_inner();
    report.sent_bytes = counters.sent.into_inner();
    report.unique_chunks = firsts.len() as u64;
    report.known_chunks = report.unique_chunks - report.new_chunks;

    let ids: Vec<BlockId> = firsts.iter().map(|f| f.1).collect();
    store.register(&opts.name, logical, &ids)?;
    if let Some(cache) = &opts.cache {
        cache.insert(firsts.iter().copied());
    }
    let mut file = recipe
        .finish_v1(logical, &image_hash)
        .at(&tmp_path)?
        .into_inner()
        .map_err(|e| e.into_error())
        .at(&tmp_path)?;
    file.flush().at(&tmp_path)?;
    file.sync_all().at(&tmp_path)?;
    report.recipe_bytes = file.metadata().at(&tmp_path)?.len();
    drop(file);
    std::fs::rename(&tmp_path, recipe_path).at(recipe_path)?;
    std::mem::forget(cleanup);
    report.wall_seconds = started.elapsed().as_secs_f64();
    report.dedup_ratio =
        (report.sent_bytes > 0).then(|| report.logical_bytes as f64 / report.sent_bytes as f64);
    Ok(report)
}

fn new_batch() -> ReadBatch {
    ReadBatch {
        spans: Vec::new(),
        data: Vec::with_capacity(BATCH_BYTES + 1024 * 1024),
    }
}

/// Keys for all chunks, encoding for first-time ones, recipe entries in image order.
fn encode_batch<W: Write>(
    batch: &ReadBatch,
    opts: &PushOptions,
    recipe: &mut RecipeWriter<W>,
    firsts: &mut Vec<(BlockKey, BlockId)>,
    report: &mut PushReport,
) -> Result<UploadBatch, Error> {
    // Plaintext slices of non-zero chunks, in order.
    let mut slices: Vec<&[u8]> = Vec::new();
    let mut pos = 0usize;
    for &(_, len, zero) in &batch.spans {
        if !zero {
            slices.push(&batch.data[pos..pos + len as usize]);
            pos += len as usize;
        }
    }
    let conv = &opts.convergence;
    let keys: Vec<BlockKey> = slices.par_iter().map(|p| conv.key_for(p)).collect();

    // Which keys are new to this image (first occurrence within the batch wins).
    let mut todo: Vec<usize> = Vec::new();
    let mut in_batch: HashMap<BlockKey, usize> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if recipe.index_of(k).is_none() && !in_batch.contains_key(k) {
            in_batch.insert(*k, todo.len());
            todo.push(i);
        }
    }
    // Ids the cache knows need no encoding (unless the store turns out to lack them).
    let cached: Vec<Option<BlockId>> = match &opts.cache {
        Some(c) => c.lookup(&todo.iter().map(|&i| keys[i]).collect::<Vec<_>>()),
        None => vec![None; todo.len()],
    };
    report.cache_hits += cached.iter().filter(|c| c.is_some()).count() as u64;
    let encoded: Vec<(BlockId, Option<Vec<u8>>)> = todo
        .par_iter()
        .zip(cached.par_iter())
        .map_init(Encoder::new, |enc, (&i, hit)| match hit {
            Some(id) => (*id, None),
            None => {
                let b = enc.encode_with_key(keys[i], slices[i]);
                (b.id, Some(b.object))
            }
        })
        .collect();
    let todo_ids: Vec<BlockId> = encoded.iter().map(|e| e.0).collect();
    let mut encoded: Vec<Option<Vec<u8>>> = encoded.into_iter().map(|e| e.1).collect();

    let mut upload = UploadBatch { blocks: Vec::new() };
    let mut k = 0usize;
    for &(_, len, zero) in &batch.spans {
        if zero {
            recipe.hole(len as u64);
            report.zero_bytes += len as u64;
            continue;
        }
        let key = keys[k];
        k += 1;
        report.chunks += 1;
        report.data_bytes += len as u64;
        let id = match recipe.index_of(&key) {
            Some(i) => firsts[i as usize].1,
            None => todo_ids[in_batch[&key]],
        };
        let first = recipe.block(&id, &key, len).map_err(|e| Error::Io {
            path: PathBuf::from("recipe"),
            source: e,
        })?;
        if first {
            firsts.push((key, id));
            report.unique_bytes += len as u64;
            let object = encoded[in_batch[&key]].take();
            let plain = object.is_none().then(|| slices[k - 1].to_vec());
            upload.blocks.push(UploadItem {
                id,
                key,
                len,
                object,
                plain,
            });
        }
    }
    Ok(upload)
}

/// Asks which blocks the store lacks and uploads those, encoding cache hits if needed.
fn upload(
    store: &dyn BlockStore,
    batch: &UploadBatch,
    c: &Counters,
    cache: Option<&KeyCache>,
) -> Result<(), Error> {
    let ids: Vec<BlockId> = batch.blocks.iter().map(|b| b.id).collect();
    let missing: std::collections::HashSet<BlockId> = store.missing(&ids)?.into_iter().collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut late: Vec<Vec<u8>> = Vec::new();
    let mut enc: Option<Encoder> = None;
    for b in batch.blocks.iter().filter(|b| missing.contains(&b.id)) {
        if let (None, Some(plain)) = (&b.object, &b.plain) {
            let e = enc
                .get_or_insert_with(Encoder::new)
                .encode_with_key(b.key, plain);
            if e.id != b.id {
                if let Some(cache) = cache {
                    cache.forget(&b.key);
                }
                return Err(Error::Invalid(format!(
                    "the key cache held a wrong id for block {} (entry removed); run the push again",
                    b.id
                )));
            }
            late.push(e.object);
        }
    }
    let mut late_iter = late.iter();
    let send: Vec<(BlockId, &[u8])> = batch
        .blocks
        .iter()
        .filter(|b| missing.contains(&b.id))
        .map(|b| match &b.object {
            Some(o) => (b.id, &o[..]),
            None => (b.id, &late_iter.next().expect("encoded late")[..]),
        })
        .collect();
    store.put(&send)?;
    for (b, (_, obj)) in batch
        .blocks
        .iter()
        .filter(|b| missing.contains(&b.id))
        .zip(&send)
    {
        c.new_chunks.fetch_add(1, Ordering::Relaxed);
        c.new_plain.fetch_add(b.len as u64, Ordering::Relaxed);
        c.sent.fetch_add(obj.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// A hidden temporary name in the same directory, so the final rename is atomic.
pub(crate) fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recipe".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Removes a temporary file unless forgotten (on success).
pub(crate) struct RemoveOnDrop(pub Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}
