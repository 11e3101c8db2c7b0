//! `bonsai push`

use crate::args::PushArgs;
use crate::store::Access;
use crate::{preflight, progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PushOptions, PushReport};
use std::path::{Path, PathBuf};

/// Pushes an image and returns the figures (also used by `demo`).
pub fn push(args: &PushArgs, quiet: bool) -> anyhow::Result<PushReport> {
    preflight::image_input(&args.image)?;
    let file_name = args
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let recipe = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{file_name}.recipe")));
    preflight::new_file(&recipe, "recipe", args.force)?;
    let image = bonsai_core::image::open_image(&args.image, args.format)
        .with_context(|| format!("cannot read image {}", args.image.display()))?;
    preflight::image_not_empty_device(&args.image, image.logical_size)?;
    let store = args.store.open(Access::ExistingOrEmpty)?;
    let opts = PushOptions {
        chunker: args.chunk.params()?,
        convergence: args.secret.convergence()?,
        name: args.name.clone().unwrap_or(file_name),
        source_format: image.format,
        cache: crate::args::key_cache(args.no_cache),
        image_path: args.image.clone(),
        ..Default::default()
    };
    let disk = bonsai_core::StreamDisk::new(image.reader, image.logical_size);
    let bar = Bar::new(quiet || args.json, Some(image.logical_size));
    let report = bonsai_core::push(&disk, store.as_ref(), &recipe, &opts, &bar)
        .with_context(|| format!("push of {} failed", args.image.display()))?;
    private(&recipe)?;
    Ok(report)
}

/// A recipe is the key to its image: owner-only. (The engine's publish step should
/// create it so; this makes sure whatever wrote it.)
fn private(recipe: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(recipe, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make recipe {} private", recipe.display()))
}

/// Runs the command.
pub fn run(args: PushArgs, quiet: bool) -> anyhow::Result<()> {
    let report = push(&args, quiet)?;
    let store = args.store.store.to_string();
    if args.json {
        render::json_with_store(&report, &store)
    } else {
        render::text(|out| render::push(out, &report, &store))
    }
}
