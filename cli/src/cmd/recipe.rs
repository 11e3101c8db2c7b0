//! `bonsai recipe show`, `recipe check` (are all blocks in the store?), `recipe keygen`.

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
        RecipeCommand::Check {
            recipe,
            store,
            json,
        } => check(&recipe, &store, json),
        RecipeCommand::Keygen { out } => keygen(&out),
    }
}

/// Asks the store which of the recipe's blocks it lacks (one query per 65 536 ids).
fn check(
    recipe: &std::path::Path,
    store: &crate::args::StoreArgs,
    json: bool,
) -> anyhow::Result<()> {
    let r =
        Recipe::open(recipe).with_context(|| format!("cannot use recipe {}", recipe.display()))?;
    let store = store.open_admin()?;
    let ids: Vec<_> = r.blocks.iter().map(|b| b.id).collect();
    let missing = store.missing(&ids)?;
    if json {
        crate::render::json(&serde_json::json!({
            "recipe": recipe.display().to_string(),
            "store": store.describe(),
            "blocks": ids.len(),
            "missing_blocks": missing.len(),
            "missing": missing,
            "complete": missing.is_empty(),
        }))?;
    } else if missing.is_empty() {
        println!(
            "recipe {}: all {} blocks are in {}",
            recipe.display(),
            ids.len(),
            store.describe()
        );
    } else {
        for id in missing.iter().take(10) {
            println!("  missing block {id}");
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "recipe {}: {} of {} blocks are not in {}; push the image again to restore them",
        recipe.display(),
        missing.len(),
        ids.len(),
        store.describe()
    );
    Ok(())
}

/// Writes a new age identity to `out` (0600, never over an existing file).
fn keygen(out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| {
            format!(
                "cannot create key file {} (it must not exist)",
                out.display()
            )
        })?;
    f.write_all(bonsai_core::seal::RecipeKey::generate().as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing key file {}", out.display()))?;
    println!(
        "wrote recipe key {}: keep a copy somewhere safe; without it sealed recipes cannot be opened",
        out.display()
    );
    Ok(())
}
