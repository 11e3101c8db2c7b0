//! Refills a server's local index from the bucket: every block object (from a listing of
//! the 256 shards, 16 at a time; one LIST request per 1 000 blocks), then every manifest.
//!
//! Run at start when the index is empty (a new server, a lost disk) or on
//! `--rebuild-index`. A manifest that names a block the bucket no longer holds is skipped
//! with a warning: the store never promises an image it cannot serve.

use super::layout::decode_manifest;
use super::{Bucket, S3Error};
use crate::index::Index;
use std::path::Path;
use std::time::Instant;

/// What a rebuild found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RebuildReport {
    /// Block objects indexed.
    pub blocks: u64,
    /// Manifests indexed.
    pub images: u64,
    /// Manifests skipped (damaged, or naming an absent block).
    pub skipped_images: u64,
    /// Time taken.
    pub seconds: f64,
}

/// Lists the bucket into `index` (whose file is at `index_path`, for messages).
pub fn rebuild(
    bucket: &Bucket,
    index: &Index,
    index_path: &Path,
) -> Result<RebuildReport, S3Error> {
    let t = Instant::now();
    let ix = |source| S3Error::Index {
        path: index_path.to_path_buf(),
        source,
    };
    let mut report = RebuildReport {
        blocks: bucket.list_blocks(|blocks| index.insert(&blocks).map(|_| ()).map_err(ix))?,
        ..Default::default()
    };
    for name in bucket.list_manifests()? {
        let Some(bytes) = bucket.get_manifest(&name)? else {
            continue; // forgotten while we listed
        };
        let (logical, ids) = match decode_manifest(&bytes) {
            Ok(m) => m,
            Err(reason) => {
                tracing::warn!(image = %name, reason, "damaged manifest in the bucket; skipped");
                report.skipped_images += 1;
                continue;
            }
        };
        match index.register(&name, logical, &ids).map_err(ix)? {
            None => report.images += 1,
            Some(id) => {
                tracing::warn!(image = %name, block = %id, "manifest names a block the bucket lacks; skipped");
                report.skipped_images += 1;
            }
        }
    }
    report.seconds = t.elapsed().as_secs_f64();
    Ok(report)
}
