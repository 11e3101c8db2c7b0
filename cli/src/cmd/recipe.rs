//! `bonsai recipe show`

use crate::args::RecipeCommand;
use anyhow::Context;
use bonsai_core::Recipe;
use indicatif::HumanBytes;

/// Runs the command.
pub fn run(cmd: RecipeCommand) -> anyhow::Result<()> {
    match cmd {
        RecipeCommand::Show { recipe, json } => {
            let r = Recipe::open(&recipe)
                .with_context(|| format!("cannot use recipe {}", recipe.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r.to_json())?);
                return Ok(());
            }
            let c = r.header.chunker;
            println!("recipe {}", recipe.display());
            let what = match r.image_check() {
                bonsai_core::recipe::ImageCheck::Extents(_) => "BLAKE3 over the extents",
                bonsai_core::recipe::ImageCheck::WholeImageBlake3(_) => "BLAKE3 of the raw image",
            };
            println!("  format       version {}", r.version);
            println!("  image hash   {} ({what})", r.image_hash);
            println!("  logical      {}", HumanBytes(r.logical_size));
            println!("  holes        {}", HumanBytes(r.hole_bytes()));
            println!("  extents      {}", r.extents.len());
            println!("  blocks       {} distinct", r.blocks.len());
            println!(
                "  chunker      {:?} min {} avg {} max {}",
                c.kind, c.min, c.avg, c.max
            );
            println!("  source       {:?}", r.header.source_format);
            Ok(())
        }
    }
}
