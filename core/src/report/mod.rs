//! What `bonsai report`, `GET /v1/report` and the dashboard show: per registered image its
//! logical size, data, bytes shared with other images and bytes only it holds; the growth
//! of the store in registration order (logical vs stored, the original Bonsai figure); a
//! pairwise sharing matrix. These structs are the `--json` contract of `bonsai report` and
//! the body of `GET /v1/report`: fields are only ever added.
//!
//! The store computes them from its index alone (block sizes, per-image zero counts sent at
//! registration), never by reading a block. [`svg`] draws the charts and [`html`] the
//! self-contained page; both are pure (figures in, text out).
//!
//! Caveat: a block's plaintext length is indexed when the block is uploaded; blocks
//! uploaded by a store older than this feature have none, and the plaintext figures that
//! need them are `null` rather than wrong.

pub mod html;
pub mod svg;

use crate::id::BlockId;
use crate::stats::Savings;

/// Most images in the sharing matrix unless asked otherwise (a 12×12 table still reads).
pub const DEFAULT_MATRIX_IMAGES: usize = 12;

/// What `register` carries: the manifest and the figures reports need. Everything here is
/// what the store may know; keys never leave the client.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    /// Name the image is registered under.
    pub name: &'a str,
    /// Virtual size.
    pub logical_bytes: u64,
    /// Bytes in all-zero chunks (holes); `data = logical - zeros`.
    pub zero_bytes: u64,
    /// Distinct block ids the image uses.
    pub ids: &'a [BlockId],
    /// The whole image's hash, as the recipe states it: recorded with the version so a
    /// sealed recipe can be checked against what was registered.
    pub image_hash: Option<crate::ImageHash>,
}

/// Options of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOptions {
    /// Most images in the pairwise sharing matrix (the first ones registered).
    pub matrix_images: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            matrix_images: DEFAULT_MATRIX_IMAGES,
        }
    }
}

/// One registered image. *Stored* bytes are block-object bytes (compressed and
/// encrypted); unqualified bytes are plaintext. docs/RATIOS.md defines every word.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageFigures {
    /// Registered name.
    pub name: String,
    /// When it was (last) registered, Unix seconds.
    pub registered: i64,
    /// Virtual size.
    pub logical_bytes: u64,
    /// Bytes in holes; `null` when registered by a client that did not send it.
    pub zero_bytes: Option<u64>,
    /// Non-zero bytes (`logical - zeros`); `null` when zeros are unknown.
    pub data_bytes: Option<u64>,
    /// Distinct blocks it uses.
    pub blocks: u64,
    /// Plaintext bytes of its distinct blocks.
    pub distinct_bytes: Option<u64>,
    /// Plaintext bytes of its distinct blocks that another registered image uses too.
    pub shared_bytes: Option<u64>,
    /// Plaintext bytes of the blocks only this image uses.
    pub unique_bytes: Option<u64>,
    /// Stored bytes of its distinct blocks: what it costs alone.
    pub stored_bytes: u64,
    /// Stored bytes of its blocks another image uses too.
    pub shared_stored_bytes: u64,
    /// Stored bytes only it holds: what forgetting it (and a gc) would free.
    pub unique_stored_bytes: u64,
    /// Stored bytes of blocks no image registered before it uses: what it added to the
    /// store, in registration order.
    pub new_stored_bytes: u64,
    /// Its savings alone: zeros `logical/data`, dedup within the image `data/distinct`,
    /// compression `distinct/stored`.
    pub savings: Savings,
}

/// One step of the growth curve: the store after the first `images` registrations.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrowthPoint {
    /// The image registered at this step.
    pub name: String,
    /// Sum of logical sizes so far.
    pub logical_bytes: u64,
    /// Sum of data bytes so far (`null` once an image's zeros are unknown).
    pub data_bytes: Option<u64>,
    /// Plaintext bytes of the distinct blocks so far.
    pub distinct_bytes: Option<u64>,
    /// Stored bytes of the distinct blocks so far.
    pub stored_bytes: u64,
}

/// Pairwise sharing between the first `names.len()` images.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SharingMatrix {
    /// Images in registration order.
    pub names: Vec<String>,
    /// `stored[i][j]`: stored bytes of blocks both image i and image j use; the diagonal
    /// is each image's own stored bytes.
    pub stored: Vec<Vec<u64>>,
    /// True when more images are registered than the matrix shows.
    pub truncated: bool,
}

/// Store-wide totals over registered images.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReportTotals {
    /// Registered images.
    pub images: u64,
    /// Sum of their logical sizes.
    pub logical_bytes: u64,
    /// Sum of their data bytes (`null` if any image's zeros are unknown).
    pub data_bytes: Option<u64>,
    /// Distinct blocks they use.
    pub blocks: u64,
    /// Plaintext bytes of those blocks.
    pub distinct_bytes: Option<u64>,
    /// Stored bytes of those blocks.
    pub stored_bytes: u64,
    /// Blocks held that no registered image uses (a gc would free them).
    pub unreferenced_blocks: u64,
    /// Stored bytes of those.
    pub unreferenced_stored_bytes: u64,
    /// Zero elimination × deduplication × compression = overall (`logical/stored`).
    pub savings: Savings,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreReport {
    /// Store-wide totals.
    pub totals: ReportTotals,
    /// Every registered image, in registration order.
    pub images: Vec<ImageFigures>,
    /// The growth curve, one point per image in registration order.
    pub growth: Vec<GrowthPoint>,
    /// Pairwise sharing of the first images.
    pub matrix: SharingMatrix,
}

impl ImageFigures {
    /// Fills `data_bytes`, `unique_*` and `savings` from the counted fields.
    pub fn derive(&mut self) {
        self.data_bytes = self
            .zero_bytes
            .map(|z| self.logical_bytes.saturating_sub(z));
        self.unique_bytes = match (self.distinct_bytes, self.shared_bytes) {
            (Some(d), Some(s)) => Some(d.saturating_sub(s)),
            _ => None,
        };
        self.unique_stored_bytes = self.stored_bytes.saturating_sub(self.shared_stored_bytes);
        self.savings = savings_of(
            self.logical_bytes,
            self.data_bytes,
            self.distinct_bytes,
            self.stored_bytes,
        );
    }
}

/// Savings where data or plaintext may be unknown: the known factors are kept, and the
/// overall ratio (`logical/stored`) is always known.
pub fn savings_of(logical: u64, data: Option<u64>, plain: Option<u64>, stored: u64) -> Savings {
    let mut s = Savings::of(logical, data.unwrap_or(0), plain.unwrap_or(0), Some(stored));
    if data.is_none() {
        s.zero_elimination = None;
        s.deduplication = None;
    }
    if plain.is_none() {
        s.deduplication = None;
        s.compression = None;
    }
    s
}

/// Local images for `bonsai analyze --html`: the growth curve without a store, and rows
/// shaped like a report's so the same page draws them.
pub fn from_analysis(rows: &[crate::analyze::ImageAnalysis]) -> StoreReport {
    let mut report = StoreReport::default();
    let (mut logical, mut data, mut distinct) = (0u64, 0u64, 0u64);
    for r in rows {
        logical += r.logical_bytes;
        data += r.data_bytes;
        distinct += r.new_bytes;
        report.growth.push(GrowthPoint {
            name: r.image.clone(),
            logical_bytes: logical,
            data_bytes: Some(data),
            distinct_bytes: Some(distinct),
            stored_bytes: 0,
        });
    }
    report.totals = ReportTotals {
        images: rows.len() as u64,
        logical_bytes: logical,
        data_bytes: Some(data),
        distinct_bytes: Some(distinct),
        savings: Savings::of(logical, data, distinct, None),
        ..Default::default()
    };
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_fills_unique_and_savings() {
        let mut f = ImageFigures {
            logical_bytes: 1000,
            zero_bytes: Some(600),
            distinct_bytes: Some(200),
            shared_bytes: Some(150),
            stored_bytes: 100,
            shared_stored_bytes: 70,
            ..Default::default()
        };
        f.derive();
        assert_eq!(f.data_bytes, Some(400));
        assert_eq!(f.unique_bytes, Some(50));
        assert_eq!(f.unique_stored_bytes, 30);
        assert_eq!(f.savings.zero_elimination, Some(2.5));
        assert_eq!(f.savings.deduplication, Some(2.0));
        assert_eq!(f.savings.compression, Some(2.0));
        assert_eq!(f.savings.overall, Some(10.0));
    }

    #[test]
    fn unknown_figures_stay_unknown() {
        let s = savings_of(1000, None, None, 100);
        assert_eq!(s.zero_elimination, None);
        assert_eq!(s.deduplication, None);
        assert_eq!(s.compression, None);
        assert_eq!(s.overall, Some(10.0));
    }
}
