//! Store-to-store sync: copies image versions (manifest, blocks, sealed recipe, boot
//! profile) from one store to another, sending only the blocks the target lacks.
//!
//! Order makes it safe to interrupt and to repeat: a version's blocks go first, each
//! checked against its id before it is sent (a hostile source cannot get a damaged block
//! past us, and the target checks again); the version is registered only when every block
//! is there, under the same number (its sealed recipe is bound to it), so the target never
//! lists an image it cannot serve. A re-run asks the target what it lacks and sends the
//! rest; a version already there with the same blocks is left as it is.

use crate::codec::verify_object;
use crate::id::{BlockId, ImageHash};
use crate::progress::Progress;
use crate::report::Registration;
use crate::store::{limits, manifest, BlockStore, ImageInfo, StoreError, StoreErrorKind};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ids asked about in one existence query.
const QUERY_IDS: usize = 4096;
/// Blocks fetched and uploaded together (about 4 MiB of objects at 64 KiB blocks).
const BATCH_BLOCKS: usize = 64;

/// How a sync runs.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Most bytes of block objects sent per second (`None`: as fast as the stores go).
    pub limit_rate: Option<u64>,
    /// Batches in flight at once.
    pub threads: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            limit_rate: None,
            threads: 4,
        }
    }
}

/// What copying one version did (part of `bonsai sync --json`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VersionCopy {
    /// `NAME@VERSION`.
    pub version: String,
    /// Whether the target had this version already (nothing registered anew).
    pub existed: bool,
    /// Distinct blocks the version uses.
    pub blocks: u64,
    /// Blocks the target lacked and was sent.
    pub sent_blocks: u64,
    /// Bytes of block objects sent.
    pub sent_bytes: u64,
    /// Whether a sealed recipe was copied (or was there already).
    pub sealed_recipe: bool,
    /// Whether a boot profile was copied (or was there already).
    pub profile: bool,
}

/// Copies version `info` from `from` to `to`. Blocks first, then the registration, then
/// the sealed recipe and boot profile.
pub fn copy_version(
    from: &dyn BlockStore,
    to: &dyn BlockStore,
    info: &ImageInfo,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<VersionCopy, crate::Error> {
    let label = info.version_ref().to_string();
    let (header, ids) = read_manifest(from, info)?;
    let mut copy = VersionCopy {
        version: label.clone(),
        blocks: ids.len() as u64,
        ..VersionCopy::default()
    };
    let missing = lacking(to, &ids)?;
    // the objects' sizes are known only as they arrive: bytes sent, no total
    progress.start(&format!("sync {label}"), None);
    let sent = send_blocks(from, to, &missing, opts, progress);
    progress.finish();
    (copy.sent_blocks, copy.sent_bytes) = sent?;
    let image_hash = header
        .image_hash
        .as_deref()
        .map(|h| h.parse::<ImageHash>())
        .transpose()
        .map_err(|_| {
            protocol(
                from,
                format!("the manifest of {label} has a malformed image hash"),
            )
        })?;
    let reg = Registration {
        name: &header.name,
        logical_bytes: header.logical_bytes,
        zero_bytes: header.zero_bytes.unwrap_or(0),
        ids: &ids,
        image_hash,
    };
    copy.existed = to.register_copy(&reg, header.version)?;
    copy.sealed_recipe = copy_named(from.get_sealed_recipe(&label), |b| {
        to.put_sealed_recipe(&label, b)
    })?;
    copy.profile = copy_named(from.get_profile(&label), |b| {
        to.put_profile(&label, b).map(drop)
    })?;
    Ok(copy)
}

/// The version's manifest, parsed as strictly as a store parses its own, and checked to
/// be the version asked for.
fn read_manifest(
    from: &dyn BlockStore,
    info: &ImageInfo,
) -> Result<(manifest::VersionHeader, Vec<BlockId>), crate::Error> {
    let label = info.version_ref().to_string();
    let bytes = from
        .get_manifest(&label)?
        .ok_or_else(|| protocol(from, format!("it lists {label} but has no manifest for it")))?;
    let key = manifest::key(&info.name, info.version);
    match manifest::parse(&key, &bytes) {
        Some((h, ids)) if h.name == info.name && h.version == info.version => Ok((h, ids)),
        _ => Err(protocol(from, format!("the manifest of {label} is malformed")).into()),
    }
}

fn protocol(store: &dyn BlockStore, reason: String) -> StoreError {
    StoreError::Protocol {
        store: store.describe(),
        reason,
    }
}

/// A sealed recipe or boot profile copied if the source keeps one; whether it did.
fn copy_named(
    got: Result<Option<Vec<u8>>, StoreError>,
    put: impl FnOnce(&[u8]) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    match got {
        Ok(Some(bytes)) => put(&bytes).map(|()| true),
        Ok(None) => Ok(false),
        Err(e) if e.kind() == StoreErrorKind::Unsupported => Ok(false),
        Err(e) => Err(e),
    }
}

/// The ids the target lacks, asked in bounded queries.
fn lacking(to: &dyn BlockStore, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(QUERY_IDS.min(limits::MAX_IDS_PER_QUERY)) {
        out.extend(to.missing(chunk)?);
    }
    Ok(out)
}

/// Fetches, checks and uploads `ids` in batches on `opts.threads` threads; returns the
/// blocks and object bytes sent. The first failure stops the others.
fn send_blocks(
    from: &dyn BlockStore,
    to: &dyn BlockStore,
    ids: &[BlockId],
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<(u64, u64), crate::Error> {
    let batches: Vec<&[BlockId]> = ids.chunks(BATCH_BLOCKS).collect();
    let next = Mutex::new(0usize);
    let totals = Mutex::new((0u64, 0u64));
    let failed: Mutex<Option<crate::Error>> = Mutex::new(None);
    let pace = Pacer::new(opts.limit_rate);
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                    *n += 1;
                    *n - 1
                };
                let stop = failed.lock().map(|f| f.is_some()).unwrap_or(true);
                let Some(batch) = batches.get(i).filter(|_| !stop) else {
                    break;
                };
                match send_batch(from, to, batch, &pace) {
                    Ok(bytes) => {
                        let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
                        t.0 += batch.len() as u64;
                        t.1 += bytes;
                        drop(t);
                        progress.advance(bytes);
                    }
                    Err(e) => {
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(totals.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// One batch: fetched, every object checked against its id, uploaded. Returns its bytes.
fn send_batch(
    from: &dyn BlockStore,
    to: &dyn BlockStore,
    batch: &[BlockId],
    pace: &Pacer,
) -> Result<u64, crate::Error> {
    let objects = from.get(batch)?;
    if objects.len() != batch.len() {
        return Err(protocol(
            from,
            format!("asked for {} blocks, sent {}", batch.len(), objects.len()),
        )
        .into());
    }
    for (id, object) in batch.iter().zip(&objects) {
        verify_object(id, object)?;
    }
    let items: Vec<(BlockId, &[u8])> = batch
        .iter()
        .zip(&objects)
        .map(|(id, o)| (*id, o.as_slice()))
        .collect();
    let bytes = objects.iter().map(|o| o.len() as u64).sum();
    pace.wait(bytes);
    to.put(&items)?;
    Ok(bytes)
}

/// Holds the average rate of bytes sent to a limit (`--limit-rate`).
struct Pacer {
    rate: Option<u64>,
    state: Mutex<(Instant, u64)>,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Self {
        Pacer {
            rate: rate.filter(|&r| r > 0),
            state: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Waits until `bytes` may be sent (when everything sent before them has taken its
    /// time at the limit), and counts them.
    fn wait(&self, bytes: u64) {
        let Some(rate) = self.rate else { return };
        let due = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let due = s.0 + Duration::from_secs_f64(s.1 as f64 / rate as f64);
            s.1 += bytes;
            due
        };
        if let Some(left) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_holds_the_average_rate() {
        let p = Pacer::new(Some(1_000_000));
        let t = Instant::now();
        for _ in 0..4 {
            p.wait(50_000);
        }
        let took = t.elapsed().as_secs_f64();
        // the fourth waits for the three before it: 150 kB at 1 MB/s
        assert!(took >= 0.149, "200 kB at 1 MB/s took {took} s");
    }

    #[test]
    fn no_limit_never_waits() {
        let p = Pacer::new(None);
        let t = Instant::now();
        p.wait(u64::MAX / 2);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
