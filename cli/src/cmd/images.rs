//! `bonsai images`: registered images with their figures (read token).

use crate::args::StoreArgs;
use crate::render;
use crate::store::Access;
use bonsai_core::stats::human_bytes;
use bonsai_core::store::ImageInfo;
use clap::Args;
use std::io::Write;

/// `bonsai images`
#[derive(Args, Debug)]
pub(crate) struct ImagesArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"store": …, "images": [{name, version, image_hash, by, logical_bytes,
    /// blocks, unique_bytes, registered, sealed_recipe}]}`, one entry per version.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub(crate) fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let images = store.images()?;
    if args.json {
        return render::json(&serde_json::json!({
            "store": store.describe(),
            "images": images,
        }));
    }
    let name = store.describe();
    render::text(|out| table(out, &name, &images))
}

/// One line per version, sizes human, names escaped for the terminal.
fn table(out: &mut dyn Write, store: &str, images: &[ImageInfo]) -> std::io::Result<()> {
    let names: std::collections::BTreeSet<&str> = images.iter().map(|i| i.name.as_str()).collect();
    writeln!(
        out,
        "store {store}: {} image(s), {} version(s)",
        names.len(),
        images.len()
    )?;
    writeln!(
        out,
        "{:<32} {:>4} {:>11} {:>9} {:>16}  {:<20} {:<16} sealed",
        "name", "ver", "logical", "blocks", "stored only here", "registered (UTC)", "by"
    )?;
    for i in images {
        writeln!(
            out,
            "{:<32} {:>4} {:>11} {:>9} {:>16}  {:<20} {:<16} {}",
            bonsai_core::name::for_terminal(&i.name),
            i.version,
            human_bytes(i.logical_bytes),
            i.blocks,
            human_bytes(i.unique_bytes),
            bonsai_core::stats::utc(i.registered),
            bonsai_core::name::for_terminal(&i.by),
            if i.sealed_recipe { "yes" } else { "-" }
        )?;
    }
    Ok(())
}
