//! Human text or `--json` for every command's result. Results go to stdout; logs and
//! progress to stderr.

use bonsai_core::analyze::ImageAnalysis;
use bonsai_core::stats::{fmt_ratio, Savings};
use bonsai_core::{PullReport, PushReport, StoreStats};
use indicatif::HumanBytes;

/// Prints `value` as one line of JSON.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
}

/// The summary after a push.
pub fn push(r: &PushReport) {
    println!("pushed {} -> {}", r.name, r.recipe);
    println!(
        "  image     {} logical, {} zeros (holes), {} data",
        HumanBytes(r.logical_bytes),
        HumanBytes(r.zero_bytes),
        HumanBytes(r.data_bytes)
    );
    println!(
        "  chunks    {} ({} distinct, {} of them already in the store)",
        r.chunks, r.unique_chunks, r.known_chunks
    );
    println!(
        "  sent      {} new blocks, {} ({} before compression)",
        r.new_chunks,
        HumanBytes(r.sent_bytes),
        HumanBytes(r.new_plain_bytes),
    );
    println!("  savings   {}", savings_line(&r.savings));
    println!(
        "  time      {:.2}s, {} of image",
        r.wall_seconds,
        rate(r.logical_bytes, r.wall_seconds)
    );
}

/// The summary after a pull.
pub fn pull(r: &PullReport) {
    println!(
        "pulled {} (verified: {})",
        r.output,
        if r.verified { "yes" } else { "no" }
    );
    println!(
        "  image     {} logical, {} holes, {} distinct blocks",
        HumanBytes(r.logical_bytes),
        HumanBytes(r.zero_bytes),
        r.unique_chunks
    );
    println!(
        "  sources   {} blocks fetched ({}), {} from seeds, {} reused from an earlier attempt",
        r.fetched_blocks,
        HumanBytes(r.fetched_bytes),
        HumanBytes(r.seeded_bytes),
        HumanBytes(r.resumed_bytes)
    );
    println!(
        "  time      {:.2}s, {} of image",
        r.wall_seconds,
        rate(r.logical_bytes, r.wall_seconds)
    );
}

/// Store-wide figures.
pub fn stats(store: &str, s: &StoreStats) {
    println!("store {store}");
    println!("  blocks        {}", s.blocks);
    println!("  stored        {}", HumanBytes(s.stored_bytes));
    println!("  images        {}", s.images);
    println!("  logical       {}", HumanBytes(s.logical_bytes));
    println!(
        "  overall       {} (logical / stored; `bonsai report` splits it)",
        fmt_ratio((s.stored_bytes > 0).then_some(s.dedup_ratio))
    );
}

/// The three savings and their product (docs/RATIOS.md); `-` for an infinite or
/// undefined factor.
pub fn savings_line(s: &Savings) -> String {
    s.to_string()
}

/// The analyze table.
pub fn analyze(rows: &[ImageAnalysis]) {
    println!(
        "{:<28} {:>11} {:>11} {:>11} {:>11} {:>11} {:>9}",
        "image", "logical", "data", "distinct", "new", "cum. new", "zero×dedup"
    );
    let mut cum = 0u64;
    for r in rows {
        cum += r.new_bytes;
        println!(
            "{:<28} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8.1}x",
            r.image,
            HumanBytes(r.logical_bytes).to_string(),
            HumanBytes(r.data_bytes).to_string(),
            HumanBytes(r.distinct_bytes).to_string(),
            HumanBytes(r.new_bytes).to_string(),
            HumanBytes(cum).to_string(),
            r.cumulative_ratio
        );
    }
}
