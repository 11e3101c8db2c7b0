//! Dedup figures without a store: chunk images in order and count what each one would add.
//! Keys are enough to tell chunks apart (a key determines its block), so nothing is
//! compressed or encrypted: this runs at hashing speed.

use crate::batch::Batcher;
use crate::chunk::ChunkerParams;
use crate::codec::Convergence;
use crate::stats::DedupCounter;
use std::io::{self, Read};

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
    /// Logical bytes of all images so far / new bytes of all images so far.
    pub cumulative_ratio: f64,
}

/// Analyses images in order; each is counted against all before it.
pub struct Analyzer {
    params: ChunkerParams,
    conv: Convergence,
    seen: DedupCounter,
    logical: u64,
}

impl Analyzer {
    /// An analyzer that has seen no image.
    pub fn new(params: ChunkerParams, conv: Convergence) -> Self {
        Analyzer {
            params,
            conv,
            seen: DedupCounter::new(),
            logical: 0,
        }
    }

    /// Chunks the next image and returns its row.
    pub fn add(&mut self, name: &str, image: impl Read) -> io::Result<ImageAnalysis> {
        let mut row = analyze_image(name, image, self.params, &self.conv, &mut self.seen)?;
        self.logical += row.logical_bytes;
        row.cumulative_ratio = if self.seen.distinct_bytes == 0 {
            0.0
        } else {
            self.logical as f64 / self.seen.distinct_bytes as f64
        };
        Ok(row)
    }
}

fn analyze_image(
    name: &str,
    image: impl Read,
    params: ChunkerParams,
    conv: &Convergence,
    seen: &mut DedupCounter,
) -> io::Result<ImageAnalysis> {
    let mut row = ImageAnalysis {
        image: name.to_string(),
        ..Default::default()
    };
    let mut own = DedupCounter::new();
    let mut batches = Batcher::new(image, params);
    while let Some(batch) = batches.next_batch()? {
        let keys = batch.keys(conv);
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
    }
    row.zero_bytes = row.logical_bytes - row.data_bytes;
    row.distinct_bytes = own.distinct_bytes;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let ra = an.add("a", &a[..]).unwrap();
        let rb = an.add("b", &b[..]).unwrap();
        assert_eq!(ra.logical_bytes, 3_000_000);
        assert!(ra.zero_bytes >= 900_000);
        assert_eq!(ra.new_bytes, ra.distinct_bytes);
        assert!(rb.new_bytes < 400_000, "{}", rb.new_bytes);
        let expected = 5_300_000.0 / (ra.new_bytes + rb.new_bytes) as f64;
        assert!((rb.cumulative_ratio - expected).abs() < 1e-9);
        assert!(rb.cumulative_ratio > ra.cumulative_ratio);
    }
}
