//! The figures push, pull, analyze and report print. These structs ARE the `--json`
//! contract (DESIGN.md, "Contracts"): fields may be added, never renamed or removed.
//!
//! One vocabulary (docs/RATIOS.md defines each word once): *logical* bytes (virtual
//! size) = *zeros* (holes) + *data*; data deduplicates to *distinct* bytes, of which some
//! are *already in the store* and the rest *new*; new bytes are *sent* (or *stored*) as
//! compressed and encrypted block objects. [`Savings`] names the three factors — zero
//! elimination, deduplication, compression — whose product is the overall ratio.

use crate::id::{BlockKey, ImageHash};
use std::collections::HashSet;

/// What `bonsai push --json` prints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PushReport {
    /// Virtual size of the image.
    pub logical_bytes: u64,
    /// Bytes in all-zero chunks (holes; never stored).
    pub zero_bytes: u64,
    /// Non-zero chunks.
    pub chunks: u64,
    /// Distinct non-zero chunks within the image.
    pub unique_chunks: u64,
    /// Distinct chunks the store already had.
    pub known_chunks: u64,
    /// Chunks uploaded.
    pub new_chunks: u64,
    /// Plaintext bytes of the uploaded chunks.
    pub new_plain_bytes: u64,
    /// Bytes of block objects uploaded.
    pub sent_bytes: u64,
    /// Old name of `overall_ratio` (`logical_bytes / sent_bytes`), kept for scripts;
    /// `null` when nothing was sent (infinite). See docs/RATIOS.md.
    pub dedup_ratio: Option<f64>,
    /// Wall-clock time of the push.
    pub wall_seconds: f64,
    /// Where the recipe was written.
    pub recipe: String,
    /// Non-zero bytes of the image.
    pub data_bytes: u64,
    /// Plaintext bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// Size of the recipe file.
    pub recipe_bytes: u64,
    /// The recipe's image hash: for recipe v2 (written today) BLAKE3 over the extents
    /// (offset, length, key; docs/FORMAT.md), so holes cost nothing; for v1 it was the
    /// BLAKE3 of the raw image.
    pub image_hash: ImageHash,
    /// Name the manifest was registered under.
    pub name: String,
    /// The version this push registered (1 for a new name; 0 from a store that keeps no
    /// versions).
    #[serde(default)]
    pub version: u64,
    /// How many versions of the name the store held before this push.
    #[serde(default)]
    pub earlier_versions: u64,
    /// Distinct chunks whose id came from the local key cache (not encoded).
    pub cache_hits: u64,
    /// Container format the image was read as (`raw`, `qcow2`, `vmdk`, ...).
    #[serde(default)]
    pub source_format: String,
    /// Every file read to produce the disk: the image, its data files and extents, then
    /// its backing chain, nearest first.
    #[serde(default)]
    pub files_read: Vec<String>,
    /// `logical_bytes / sent_bytes`: the product of the three savings; `null` when
    /// nothing was sent.
    pub overall_ratio: Option<f64>,
    /// The three named savings of this push (deduplication counts against the store).
    pub savings: Savings,
}

impl PushReport {
    /// Fills the ratios from the byte counts: zeros `logical/data`, deduplication
    /// `data/new_plain`, compression `new_plain/sent`, overall `logical/sent`.
    pub fn fill_ratios(&mut self) {
        self.savings = Savings::of(
            self.logical_bytes,
            self.data_bytes,
            self.new_plain_bytes,
            Some(self.sent_bytes),
        );
        self.overall_ratio = self.savings.overall;
        self.dedup_ratio = self.overall_ratio;
    }
}

/// The three savings between an image's logical size and the bytes it costs, each a
/// factor ≥ 1 (or `null` when its denominator is zero: infinite or undefined), so that
/// `zero_elimination × deduplication × compression = overall`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Savings {
    /// logical / data: what leaving zeros (holes) out saves.
    pub zero_elimination: Option<f64>,
    /// data / distinct-new plaintext: what storing each chunk once saves.
    pub deduplication: Option<f64>,
    /// plaintext / stored (compressed and encrypted) bytes: what zstd saves, net of the
    /// 40-byte header and tag each block carries.
    pub compression: Option<f64>,
    /// logical / stored: the product of the three.
    pub overall: Option<f64>,
}

impl Savings {
    /// The savings from `logical` bytes, their non-zero `data`, the `plain` bytes left
    /// after deduplication and (when known) the `stored` bytes those became.
    pub fn of(logical: u64, data: u64, plain: u64, stored: Option<u64>) -> Self {
        Savings {
            zero_elimination: ratio(logical, data),
            deduplication: ratio(data, plain),
            compression: stored.and_then(|s| ratio(plain, s)),
            overall: stored.and_then(|s| ratio(logical, s)),
        }
    }
}

/// What a [`Savings`] divides by, so each screen names its quantities in
/// docs/RATIOS.md's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// One push, against the store: deduplication counts only what the store lacked.
    Push,
    /// Images as stored: distinct plaintext and the stored objects (report, dashboard).
    Stored,
}

impl Basis {
    /// The quotient behind each factor: deduplication, compression, overall.
    fn quotients(self) -> [&'static str; 3] {
        match self {
            Basis::Push => ["data / new", "new / sent", "logical / sent"],
            Basis::Stored => ["data / distinct", "distinct / stored", "logical / stored"],
        }
    }
}

impl Savings {
    /// `zero elimination 2.00x (logical / data) × deduplication 1.50x (data / new) × …`:
    /// every factor with the quotient it is, as `basis` defines them.
    pub fn describe(&self, basis: Basis) -> String {
        let [dedup, comp, overall] = basis.quotients();
        format!(
            "zero elimination {} (logical / data) × deduplication {} ({dedup}) × compression {} ({comp}) = overall {} ({overall})",
            fmt_ratio(self.zero_elimination),
            fmt_ratio(self.deduplication),
            fmt_ratio(self.compression),
            fmt_ratio(self.overall)
        )
    }
}

impl std::fmt::Display for Savings {
    /// `zero elimination 2.00x × deduplication 1.50x × compression 1.50x = overall 4.50x`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "zero elimination {} × deduplication {} × compression {} = overall {}",
            fmt_ratio(self.zero_elimination),
            fmt_ratio(self.deduplication),
            fmt_ratio(self.compression),
            fmt_ratio(self.overall)
        )
    }
}

/// `a / b`, or `None` when `b` is zero (nothing to divide by: infinite or undefined).
pub fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Now, in Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time, for every screen that shows a time
/// (civil-from-days, no time-zone database needed).
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Bytes for people, binary units, one decimal: `1.5 GiB`. Every screen (text, report,
/// dashboard) prints sizes with this one function, so equal quantities print equal.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A ratio for people: `4.5x`, or `-` when undefined.
pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) => format!("{r:.2}x"),
        None => "-".into(),
    }
}

/// What `bonsai pull --json` prints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PullReport {
    /// Virtual size of the image.
    pub logical_bytes: u64,
    /// Blocks downloaded from the store.
    pub fetched_blocks: u64,
    /// Bytes of block objects downloaded.
    pub fetched_bytes: u64,
    /// Plaintext bytes taken from `--seed` files instead of the store.
    pub seeded_bytes: u64,
    /// Plaintext bytes found already written by an interrupted earlier pull.
    pub resumed_bytes: u64,
    /// True only when the bytes at OUT are exactly the image the recipe describes: every
    /// block extent read back matched its key, every hole read zero, and (recipe v1) the
    /// whole-image hash matched.
    pub verified: bool,
    /// Wall-clock time of the pull.
    pub wall_seconds: f64,
    /// Bytes left as holes.
    pub zero_bytes: u64,
    /// Distinct blocks in the recipe.
    pub unique_chunks: u64,
    /// Where the image was written.
    pub output: String,
}

/// Distinct counting over a stream of chunks, without a store: the core of `analyze`.
#[derive(Debug, Default)]
pub struct DedupCounter {
    seen: HashSet<BlockKey>,
    /// Chunks offered.
    pub chunks: u64,
    /// Bytes offered.
    pub bytes: u64,
    /// Distinct chunks.
    pub distinct_chunks: u64,
    /// Bytes of distinct chunks.
    pub distinct_bytes: u64,
}

impl DedupCounter {
    /// A counter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one chunk; returns true if it was new.
    pub fn add(&mut self, key: BlockKey, len: u64) -> bool {
        self.chunks += 1;
        self.bytes += len;
        let new = self.seen.insert(key);
        if new {
            self.distinct_chunks += 1;
            self.distinct_bytes += len;
        }
        new
    }

    /// Whether a chunk was seen before (without counting it).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.seen.contains(key)
    }
}

/// Pure dedup figures for a stream of (key, length): (chunks, bytes, distinct, distinct bytes).
pub fn dedup_of(chunks: impl IntoIterator<Item = (BlockKey, u64)>) -> (u64, u64, u64, u64) {
    let mut c = DedupCounter::new();
    for (k, l) in chunks {
        c.add(k, l);
    }
    (c.chunks, c.bytes, c.distinct_chunks, c.distinct_bytes)
}

#[cfg(test)]
mod tests {

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06:40");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
    }

    use super::*;

    #[test]
    fn counts_distinct() {
        let a = BlockKey([1; 32]);
        let b = BlockKey([2; 32]);
        assert_eq!(dedup_of([(a, 10), (b, 5), (a, 10)]), (3, 25, 2, 15));
        assert_eq!(dedup_of([]), (0, 0, 0, 0));
    }

    #[test]
    fn savings_multiply_to_overall() {
        let s = Savings::of(1000, 400, 100, Some(50));
        assert_eq!(s.zero_elimination, Some(2.5));
        assert_eq!(s.deduplication, Some(4.0));
        assert_eq!(s.compression, Some(2.0));
        assert_eq!(s.overall, Some(20.0));
        let product =
            s.zero_elimination.unwrap() * s.deduplication.unwrap() * s.compression.unwrap();
        assert!((product - s.overall.unwrap()).abs() < 1e-12);
        let nothing_new = Savings::of(1000, 400, 0, Some(0));
        assert_eq!(nothing_new.deduplication, None);
        assert_eq!(nothing_new.overall, None);
        assert_eq!(Savings::of(10, 10, 10, None).compression, None);
        assert_eq!(fmt_ratio(Some(4.5)), "4.50x");
        assert_eq!(fmt_ratio(None), "-");
    }

    #[test]
    fn push_ratios_keep_the_old_name() {
        let mut r = PushReport {
            logical_bytes: 800,
            data_bytes: 400,
            new_plain_bytes: 200,
            sent_bytes: 100,
            ..Default::default()
        };
        r.fill_ratios();
        assert_eq!(r.overall_ratio, Some(8.0));
        assert_eq!(r.dedup_ratio, r.overall_ratio);
        assert_eq!(r.savings.compression, Some(2.0));
    }

    #[test]
    fn push_report_has_contract_keys() {
        let v = serde_json::to_value(PushReport::default()).unwrap();
        for k in [
            "logical_bytes",
            "zero_bytes",
            "chunks",
            "unique_chunks",
            "known_chunks",
            "new_chunks",
            "new_plain_bytes",
            "sent_bytes",
            "dedup_ratio",
            "wall_seconds",
            "recipe",
            "overall_ratio",
            "savings",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        let v = serde_json::to_value(PullReport::default()).unwrap();
        for k in [
            "logical_bytes",
            "fetched_blocks",
            "fetched_bytes",
            "seeded_bytes",
            "verified",
            "wall_seconds",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
