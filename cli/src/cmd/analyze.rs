//! `bonsai analyze`

use crate::args::AnalyzeArgs;
use crate::render;
use anyhow::Context;
use bonsai_core::analyze::Analyzer;
use bonsai_core::Convergence;

/// Runs the command.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let params = args.chunk.params()?;
    let mut analyzer = Analyzer::new(params, Convergence::public());
    let mut rows = Vec::new();
    for path in &args.images {
        let image = bonsai_core::image::open_image(path, None)
            .with_context(|| format!("cannot read image {}", path.display()))?;
        let row = analyzer
            .add(&path.display().to_string(), image.reader)
            .with_context(|| format!("reading {}", path.display()))?;
        rows.push(row);
    }
    if args.json {
        render::json(&serde_json::json!({ "chunker": params, "images": rows }))
    } else {
        render::text(|out| render::analyze(out, &rows))
    }
}
