//! `bonsai recipe show`, `recipe check` (are all blocks in the store?), `recipe keygen`.

use crate::args::RecipeCommand;
use crate::exit::{Exit, Failed};
use crate::render;
use crate::store::Access;
use anyhow::Context;
use bonsai_core::stats::human_bytes;
use bonsai_core::Recipe;
use std::io::Write;
use std::path::Path;

/// Runs the command.
pub(crate) fn run(cmd: RecipeCommand) -> anyhow::Result<()> {
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
        RecipeCommand::Check {
            recipe,
            store,
            json,
        } => check(&recipe, &store, json),
        RecipeCommand::Keygen { out } => keygen(&out),
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
    writeln!(out, "  logical      {}", human_bytes(r.logical_size))?;
    writeln!(out, "  holes        {}", human_bytes(r.hole_bytes()))?;
    writeln!(out, "  extents      {}", r.extents.len())?;
    writeln!(out, "  blocks       {} distinct", r.blocks.len())?;
    writeln!(
        out,
        "  chunker      {:?} min {} avg {} max {}",
        c.kind, c.min, c.avg, c.max
    )?;
    writeln!(out, "  source       {:?}", r.header.source_format)
}

/// Asks the store which of the recipe's blocks it lacks (one query per 65 536 ids).
fn check(
    recipe: &std::path::Path,
    store: &crate::args::StoreArgs,
    json: bool,
) -> anyhow::Result<()> {
    let r =
        Recipe::open(recipe).with_context(|| format!("cannot use recipe {}", recipe.display()))?;
    let store = store.open_tiered(Access::Existing)?;
    let ids: Vec<_> = r.blocks.iter().map(|b| b.id).collect();
    let missing = store.missing(&ids)?;
    if json {
        render::json(&serde_json::json!({
            "recipe": recipe.display().to_string(),
            "store": store.describe(),
            "blocks": ids.len(),
            "missing_blocks": missing.len(),
            "missing": missing,
            "complete": missing.is_empty(),
        }))?;
    } else if missing.is_empty() {
        render::text(|out| {
            writeln!(
                out,
                "recipe {}: all {} blocks are in {}",
                recipe.display(),
                ids.len(),
                store.describe()
            )
        })?;
    } else {
        render::text(|out| {
            for id in missing.iter().take(10) {
                writeln!(out, "  missing block {id}")?;
            }
            Ok(())
        })?;
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failed::new(
        Exit::NotFound,
        format!(
            "recipe {}: {} of {} blocks are not in {}; push the image again to restore them",
            recipe.display(),
            missing.len(),
            ids.len(),
            store.describe()
        ),
    )
    .into())
}

/// Writes a new age identity to `out` (0600, never over an existing file).
fn keygen(out: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            let exit = if e.kind() == std::io::ErrorKind::AlreadyExists {
                Exit::Usage
            } else {
                Exit::LocalIo
            };
            Failed::new(
                exit,
                format!(
                    "cannot create key file {}: {e} (it must not exist; keygen never overwrites a key)",
                    out.display()
                ),
            )
        })?;
    f.write_all(bonsai_core::seal::RecipeKey::generate().as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing key file {}", out.display()))?;
    render::text(|w| {
        writeln!(
            w,
            "wrote recipe key {}: keep a copy somewhere safe; without it sealed recipes cannot be opened",
            out.display()
        )
    })
}
