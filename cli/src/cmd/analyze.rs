//! `bonsai analyze`: dedup figures for local images in order, no store; a progress bar per
//! image, and with `--html FILE` the same growth chart `bonsai report` draws.

use crate::args::AnalyzeArgs;
use crate::progress::Bar;
use crate::render;
use anyhow::Context;
use bonsai_core::analyze::Analyzer;
use bonsai_core::report::html::{page, PageOptions};
use bonsai_core::{Convergence, Progress};

/// Runs the command.
pub(crate) fn run(args: AnalyzeArgs, quiet: bool) -> anyhow::Result<()> {
    let params = args.chunk.params()?;
    let mut analyzer = Analyzer::new(params, Convergence::public());
    let mut rows = Vec::new();
    for path in &args.images {
        let image = bonsai_core::image::open_disk(path, &args.image_opts.options())
            .with_context(|| format!("cannot read image {}", path.display()))?;
        let bar = Bar::new(quiet, None);
        bar.start("scan", Some(image.disk.size()));
        let row = analyzer
            .add(&path.display().to_string(), image.disk.as_ref(), &bar)
            .with_context(|| format!("analysis of {} failed", path.display()))?;
        bar.finish();
        rows.push(row);
    }
    if let Some(out) = &args.html {
        let report = bonsai_core::report::from_analysis(&rows);
        let html = page(
            &report,
            &PageOptions {
                title: "bonsai analyze".into(),
                source: format!("{} local images, no store", rows.len()),
                generated: Some(bonsai_core::stats::unix_now()),
                ..PageOptions::default()
            },
        );
        crate::cmd::report::write_atomically(out, html.as_bytes())?;
    }
    if args.json {
        render::json(&serde_json::json!({ "chunker": params, "images": rows }))
    } else {
        render::text(|out| render::analyze(out, &rows))
    }
}
