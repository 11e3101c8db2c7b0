//! Dedup figures without a store: chunk images in order and count what each one would add.
//! Keys are enough to tell chunks apart (a key determines its block), so nothing is
//! compressed or encrypted: this runs at hashing speed. Images are read as push reads
//! them (a [`Disk`] opened by [`crate::image::open_disk`], cut by the same batcher), so
//! holes in the image's map are neither read nor hashed and the cost follows the data.

use crate::batch::DiskBatcher;
use crate::chunk::ChunkerParams;
use crate::codec::Convergence;
use crate::image::{Disk, DiskReader};
use crate::progress::Progress;
use crate::stats::DedupCounter;
use std::io;

/// One image's row in `bonsai analyze`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImageAnalysis {
    /// The image as named by the user.
    pub image: String,
    /// Virtual size.
    pub logical_bytes: u64,
    /// Bytes in all-zero chunks.
    pub zero_bytes: u64,
    /// Non-zero bytes.
    pub data_bytes: u64,
    /// Non-zero chunks.
    pub chunks: u64,
    /// Bytes of chunks distinct within this image.
    pub distinct_bytes: u64,
    /// Bytes of chunks no earlier image (nor this one before) had: what a store would gain.
    pub new_bytes: u64,
    /// Logical bytes of all images so far / new bytes of all images so far: zero
    /// elimination × deduplication (no compression: analyze does not compress).
    pub cumulative_ratio: f64,
    /// Savings of all images so far (docs/RATIOS.md); `compression` and `overall` are
    /// `null` because nothing is compressed.
    pub savings: crate::stats::Savings,
}

/// Analyses images in order; each is counted against all before it.
pub struct Analyzer {
    params: ChunkerParams,
    conv: Convergence,
    seen: DedupCounter,
    logical: u64,
    data: u64,
}

impl Analyzer {
    /// An analyzer that has seen no image.
    pub fn new(params: ChunkerParams, conv: Convergence) -> Self {
        Analyzer {
            params,
            conv,
            seen: DedupCounter::new(),
            logical: 0,
            data: 0,
        }
    }

    /// Chunks the next image and returns its row; `progress` advances by the logical
    /// bytes covered (holes included).
    pub fn add(
        &mut self,
        name: &str,
        disk: &dyn Disk,
        progress: &dyn Progress,
    ) -> io::Result<ImageAnalysis> {
        let scan = Scan {
            params: self.params,
            conv: &self.conv,
            progress,
        };
        let mut row = scan.image(name, disk, &mut self.seen)?;
        self.logical += row.logical_bytes;
        self.data += row.data_bytes;
        row.savings =
            crate::stats::Savings::of(self.logical, self.data, self.seen.distinct_bytes, None);
        row.cumulative_ratio = if self.seen.distinct_bytes == 0 {
            0.0
        } else {
            self.logical as f64 / self.seen.distinct_bytes as f64
        };
        Ok(row)
    }
}

/// How one image is scanned.
struct Scan<'a> {
    params: ChunkerParams,
    conv: &'a Convergence,
    progress: &'a dyn Progress,
}

impl Scan<'_> {
    /// The row of `disk`, counting against (and adding to) `seen`.
    fn image(
        &self,
        name: &str,
        disk: &dyn Disk,
        seen: &mut DedupCounter,
    ) -> io::Result<ImageAnalysis> {
        let mut row = ImageAnalysis {
            image: name.to_string(),
            ..Default::default()
        };
        let mut own = DedupCounter::new();
        let mut batches = DiskBatcher::new(DiskReader::new(disk), self.params);
        while let Some(batch) = batches.next_batch()? {
            let keys = batch.keys(self.conv);
            let data = batch.pieces.iter().filter(|p| !p.zero);
            for (key, p) in keys.into_iter().zip(data) {
                own.add(key, p.len);
                if seen.add(key, p.len) {
                    row.new_bytes += p.len;
                }
                row.data_bytes += p.len;
                row.chunks += 1;
            }
            row.logical_bytes += batch.logical_bytes();
            self.progress.advance(batch.logical_bytes());
        }
        if row.logical_bytes != disk.size() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "image ended at byte {} but its size is {} (did it shrink?)",
                    row.logical_bytes,
                    disk.size()
                ),
            ));
        }
        row.zero_bytes = row.logical_bytes - row.data_bytes;
        row.distinct_bytes = own.distinct_bytes;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::BytesDisk;

    #[test]
    fn second_image_adds_only_its_difference() {
        let mut x = 1u64;
        let os: Vec<u8> = (0..2_000_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        let mut a = os.clone();
        a.extend(vec![0u8; 1_000_000]);
        let mut b = os.clone();
        b.extend((0..300_000usize).map(|i| (i * 31 % 251) as u8));
        let p = ChunkerParams::fastcdc(16 * 1024);
        let mut an = Analyzer::new(p, Convergence::public());
        let none = crate::progress::NoProgress;
        let ra = an.add("a", &BytesDisk(&a), &none).unwrap();
        let rb = an.add("b", &BytesDisk(&b), &none).unwrap();
        assert_eq!(ra.logical_bytes, 3_000_000);
        assert!(ra.zero_bytes >= 900_000);
        assert_eq!(ra.new_bytes, ra.distinct_bytes);
        assert!(rb.new_bytes < 400_000, "{}", rb.new_bytes);
        let expected = 5_300_000.0 / (ra.new_bytes + rb.new_bytes) as f64;
        assert!((rb.cumulative_ratio - expected).abs() < 1e-9);
        assert!(rb.cumulative_ratio > ra.cumulative_ratio);
    }
}
