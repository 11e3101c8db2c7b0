//! `bonsai report`: the store's dedup report as a table, `--json`, or a self-contained
//! HTML page with the charts (`--html FILE`). The store computes it from its index.

use crate::args::ReportArgs;
use crate::render;
use crate::store::Access;
use anyhow::Context;
use bonsai_core::report::html::{page, PageOptions};
use bonsai_core::report::svg::human_bytes;
use bonsai_core::report::{ReportOptions, StoreReport};
use bonsai_core::stats::fmt_ratio;
use std::io::Write;
use std::path::Path;

/// Runs the command.
pub(crate) fn run(args: ReportArgs) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let report = store.report(&ReportOptions {
        matrix_images: args.matrix,
    })?;
    if let Some(path) = &args.html {
        let html = page(
            &report,
            &PageOptions {
                title: "bonsai store report".into(),
                source: format!("store {}", store.describe()),
                generated: Some(bonsai_core::stats::unix_now()),
                ..PageOptions::default()
            },
        );
        write_atomically(path, html.as_bytes())?;
    }
    if let Some(path) = &args.svg {
        let svg = bonsai_core::report::svg::growth_chart(&report.growth);
        write_atomically(path, format!("{svg}\n").as_bytes())?;
    }
    if args.json {
        return render::json(&report);
    }
    render::text(|out| {
        table(out, &store.describe(), &report)?;
        if let Some(path) = &args.html {
            writeln!(out, "wrote {}", path.display())?;
        }
        Ok(())
    })
}

/// Writes `bytes` beside `path` and renames, so a reader never sees half a page.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    // A report is for sharing: readable by others, like any file a user writes (0644).
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .and_then(|_| tmp.write_all(bytes))
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn opt(v: Option<u64>) -> String {
    v.map(human_bytes).unwrap_or_else(|| "-".into())
}

/// The human table: totals and savings, then one row per image.
fn table(out: &mut dyn Write, store: &str, r: &StoreReport) -> std::io::Result<()> {
    let t = &r.totals;
    writeln!(out, "store {store}: {} images", t.images)?;
    writeln!(
        out,
        "  logical {}  data {}  distinct {}  stored {}  ({} in {} blocks no image uses)",
        human_bytes(t.logical_bytes),
        opt(t.data_bytes),
        opt(t.distinct_bytes),
        human_bytes(t.stored_bytes),
        human_bytes(t.unreferenced_stored_bytes),
        t.unreferenced_blocks
    )?;
    writeln!(out, "  {}", render::savings_line(&t.savings))?;
    if r.images.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>16} {:>10} {:>8}",
        "image",
        "logical",
        "data",
        "distinct",
        "shared",
        "only here",
        "stored",
        "stored only here",
        "added",
        "overall"
    )?;
    for im in &r.images {
        writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>16} {:>10} {:>8}",
            bonsai_core::name::for_terminal(&im.name),
            human_bytes(im.logical_bytes),
            opt(im.data_bytes),
            opt(im.distinct_bytes),
            opt(im.shared_bytes),
            opt(im.unique_bytes),
            human_bytes(im.stored_bytes),
            human_bytes(im.unique_stored_bytes),
            human_bytes(im.new_stored_bytes),
            fmt_ratio(im.savings.overall)
        )?;
    }
    Ok(())
}
