//! `bonsai recipe show`

use crate::args::RecipeCommand;
use crate::render;
use anyhow::Context;
use bonsai_core::Recipe;
use indicatif::HumanBytes;
use std::io::Write;
use std::path::Path;

/// Runs the command.
pub fn run(cmd: RecipeCommand) -> anyhow::Result<()> {
    match cmd {
        RecipeCommand::Show { recipe, json } => {
            let r = Recipe::open(&recipe)
                .with_context(|| format!("cannot use recipe {}", recipe.display()))?;
            if json {
                let mut out = render::stdout();
                serde_json::to_writer_pretty(&mut out, &r.to_json())?;
                writeln!(out)?;
                out.flush()?;
                return Ok(());
            }
            render::text(|out| show(out, &recipe, &r))
        }
    }
}

/// The human summary of a recipe.
fn show(out: &mut dyn Write, path: &Path, r: &Recipe) -> std::io::Result<()> {
    let c = r.header.chunker;
    let what = match r.image_check() {
        bonsai_core::recipe::ImageCheck::Extents(_) => "BLAKE3 over the extents",
        bonsai_core::recipe::ImageCheck::WholeImageBlake3(_) => "BLAKE3 of the raw image",
    };
    writeln!(out, "recipe {}", path.display())?;
    writeln!(out, "  format       version {}", r.version)?;
    writeln!(out, "  image hash   {} ({what})", r.image_hash)?;
    writeln!(out, "  logical      {}", HumanBytes(r.logical_size))?;
    writeln!(out, "  holes        {}", HumanBytes(r.hole_bytes()))?;
    writeln!(out, "  extents      {}", r.extents.len())?;
    writeln!(out, "  blocks       {} distinct", r.blocks.len())?;
    writeln!(
        out,
        "  chunker      {:?} min {} avg {} max {}",
        c.kind, c.min, c.avg, c.max
    )?;
    writeln!(out, "  source       {:?}", r.header.source_format)
}
