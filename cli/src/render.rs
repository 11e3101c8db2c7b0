//! Human text or `--json` for every command's result. Results go to stdout; logs and
//! progress to stderr.
//!
//! Every function writes to a `Write` and returns its error instead of panicking as
//! `println!` does: when the reader of stdout goes away (`bonsai recipe show --json | head`)
//! the command ends quietly (see `main`). Use [`stdout`] and `writeln!`, never `println!`.

use bonsai_core::analyze::ImageAnalysis;
use bonsai_core::stats::fmt_ratio;
use bonsai_core::stats::{human_bytes, Basis};
use bonsai_core::{PullReport, PushReport, StoreStats};
use std::io::{self, Write};

/// Standard output, locked and buffered; flush it (or let [`json`] do it) before returning.
pub(crate) fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::new(io::stdout().lock())
}

/// Prints `value` as one line of JSON on stdout.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = stdout();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Prints a command's report as one line of JSON with `"store"` added: the store it used,
/// so a log of JSON lines says where each image went.
pub(crate) fn json_with_store<T: serde::Serialize>(report: &T, store: &str) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(report)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("store".into(), store.into());
    }
    json(&value)
}

/// Runs `f` on a buffered stdout and flushes it: the human form of a command's result.
pub(crate) fn text(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let mut out = stdout();
    f(&mut out)?;
    out.flush()?;
    Ok(())
}

fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

/// The summary after a push.
pub(crate) fn push(out: &mut dyn Write, r: &PushReport, store: &str) -> io::Result<()> {
    let name = bonsai_core::name::for_terminal(&r.name);
    match (r.version, r.earlier_versions) {
        (0, _) => writeln!(out, "pushed {name} to store {store}")?,
        (v, 0) => writeln!(out, "pushed {name}@{v} to store {store} (a new name)")?,
        (v, n) => writeln!(
            out,
            "pushed {name}@{v} to store {store}: {name} exists, this is a new version \
             ({n} earlier kept; pull NAME takes the newest)"
        )?,
    }
    writeln!(
        out,
        "  recipe    {} (keep it private: it is the key to the image)",
        r.recipe
    )?;
    writeln!(
        out,
        "  image     {} logical, {} zeros (holes), {} data",
        human_bytes(r.logical_bytes),
        human_bytes(r.zero_bytes),
        human_bytes(r.data_bytes)
    )?;
    writeln!(
        out,
        "  read      {} from {}",
        r.source_format,
        r.files_read.join(", ")
    )?;
    writeln!(
        out,
        "  chunks    {} ({} distinct, {} of them already in the store)",
        r.chunks, r.unique_chunks, r.known_chunks
    )?;
    writeln!(
        out,
        "  sent      {} new blocks, {} ({} before compression)",
        r.new_chunks,
        human_bytes(r.sent_bytes),
        human_bytes(r.new_plain_bytes),
    )?;
    writeln!(
        out,
        "  savings   against the store: {}",
        r.savings.describe(Basis::Push)
    )?;
    writeln!(
        out,
        "  time      {:.2}s, {} of image",
        r.wall_seconds,
        rate(r.logical_bytes, r.wall_seconds)
    )?;
    Ok(())
}

/// The summary after a pull.
/// `pull --dry-run`: where each part of the image would come from.
pub(crate) fn pull_dry_run(
    out: &mut dyn Write,
    r: &bonsai_core::pull::PullDryRun,
    store: &str,
) -> io::Result<()> {
    writeln!(
        out,
        "dry run: nothing written; the image is {} ({} holes), {} distinct blocks",
        human_bytes(r.logical_bytes),
        human_bytes(r.zero_bytes),
        r.unique_chunks
    )?;
    let resume = match &r.resume_from {
        Some(p) => format!("already in {p}"),
        None => "already written (no partial file)".to_string(),
    };
    let rows = [
        (resume, r.resumed_blocks, r.resumed_bytes),
        ("from seeds".to_string(), r.seeded_blocks, r.seeded_bytes),
        (
            format!("from store {store} ({} requests)", r.fetch_requests),
            r.fetch_blocks,
            r.fetch_bytes,
        ),
    ];
    for (what, blocks, bytes) in rows {
        writeln!(
            out,
            "  {:>9}  {blocks:>8} blocks  {what}",
            human_bytes(bytes)
        )?;
    }
    match r.missing_blocks {
        0 => writeln!(out, "the store holds every block to fetch"),
        n => writeln!(
            out,
            "the store lacks {n} of them ({}): the pull would fail",
            human_bytes(r.missing_bytes)
        ),
    }
}

pub(crate) fn pull(out: &mut dyn Write, r: &PullReport, store: &str) -> io::Result<()> {
    writeln!(
        out,
        "pulled {} from store {store} (verified: {})",
        r.output,
        if r.verified { "yes" } else { "no" }
    )?;
    writeln!(
        out,
        "  image     {} logical, {} holes, {} distinct blocks",
        human_bytes(r.logical_bytes),
        human_bytes(r.zero_bytes),
        r.unique_chunks
    )?;
    writeln!(
        out,
        "  sources   {} blocks fetched ({}), {} from seeds, {} reused from an earlier attempt",
        r.fetched_blocks,
        human_bytes(r.fetched_bytes),
        human_bytes(r.seeded_bytes),
        human_bytes(r.resumed_bytes)
    )?;
    writeln!(
        out,
        "  time      {:.2}s, {} of image",
        r.wall_seconds,
        rate(r.logical_bytes, r.wall_seconds)
    )?;
    Ok(())
}

/// Store-wide figures.
pub(crate) fn stats(out: &mut dyn Write, store: &str, s: &StoreStats) -> io::Result<()> {
    writeln!(out, "store {store}")?;
    writeln!(out, "  blocks        {}", s.blocks)?;
    writeln!(out, "  stored        {}", human_bytes(s.stored_bytes))?;
    writeln!(out, "  images        {}", s.images)?;
    writeln!(out, "  logical       {}", human_bytes(s.logical_bytes))?;
    writeln!(
        out,
        "  overall       {} (logical / stored; `bonsai report` splits it)",
        fmt_ratio((s.stored_bytes > 0).then_some(s.dedup_ratio))
    )?;
    if let Some(c) = &s.cache {
        cache_stats(out, c)?;
    }
    if let Some(o) = &s.object_store {
        object_store_stats(out, o)?;
    }
    Ok(())
}

/// An object-storage store's lines of `bonsai stats`: objects, bytes billed, requests.
fn object_store_stats(
    out: &mut dyn Write,
    o: &bonsai_core::store::ObjectStoreStats,
) -> io::Result<()> {
    let r = &o.requests;
    writeln!(out, "  bucket        {}", o.location)?;
    writeln!(
        out,
        "  packs         {} holding {} ({} live, {} headers, indexes and dead blocks)",
        o.packs,
        human_bytes(o.pack_bytes),
        human_bytes(o.live_bytes),
        human_bytes(o.overhead_bytes)
    )?;
    writeln!(
        out,
        "  requests      {} PUT, {} GET, {} HEAD, {} LIST, {} DELETE by this server since it started",
        r.put, r.get, r.head, r.list, r.delete
    )?;
    writeln!(
        out,
        "  per GiB       {:.0} PUT per GiB written ({}), {:.0} GET per GiB read ({})",
        o.put_per_gib_written,
        human_bytes(o.written_bytes),
        o.get_per_gib_read,
        human_bytes(o.read_bytes)
    )
}

/// A site cache's lines of `bonsai stats`: its upstream, hits and what they saved.
fn cache_stats(out: &mut dyn Write, c: &bonsai_core::store::CacheStats) -> io::Result<()> {
    let limit = c.limit_bytes.map_or("none".to_string(), human_bytes);
    writeln!(out, "  site cache of {} (limit {limit})", c.upstream)?;
    writeln!(
        out,
        "  hits          {} blocks, {} not fetched over the WAN ({:.0}% of blocks read)",
        c.hit_blocks,
        human_bytes(c.hit_bytes),
        c.hit_rate * 100.0
    )?;
    writeln!(
        out,
        "  fetched       {} blocks, {} from the upstream; {} evicted",
        c.fetched_blocks,
        human_bytes(c.fetched_bytes),
        c.evicted_blocks
    )
}

/// The three savings and their product (docs/RATIOS.md); `-` for an infinite or
/// undefined factor.
pub(crate) fn savings_line(s: &bonsai_core::stats::Savings) -> String {
    s.describe(Basis::Stored)
}

/// The analyze table.
pub(crate) fn analyze(out: &mut dyn Write, rows: &[ImageAnalysis]) -> io::Result<()> {
    writeln!(
        out,
        "{:<28} {:>11} {:>11} {:>11} {:>11} {:>11} {:>9}",
        "image", "logical", "data", "distinct", "new", "cum. new", "zero×dedup"
    )?;
    let mut cum = 0u64;
    for r in rows {
        cum += r.new_bytes;
        writeln!(
            out,
            "{:<28} {:>11} {:>11} {:>11} {:>11} {:>11} {:>8.1}x",
            r.image,
            human_bytes(r.logical_bytes),
            human_bytes(r.data_bytes),
            human_bytes(r.distinct_bytes),
            human_bytes(r.new_bytes),
            human_bytes(cum),
            r.cumulative_ratio
        )?;
    }
    Ok(())
}
