//! `bonsai push`

use crate::args::PushArgs;
use crate::{progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PushOptions, PushReport};
use std::path::PathBuf;

/// Pushes an image and returns the figures (also used by `demo`).
pub fn push(args: &PushArgs, quiet: bool) -> anyhow::Result<PushReport> {
    let image =
        bonsai_core::image::open_image_with(&args.image, &args.image_opts.options(args.format))
            .with_context(|| format!("cannot read image {}", args.image.display()))?;
    let (source_format, files_read) = (image.image_format, image.files_read.clone());
    let file_name = args
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let recipe = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{file_name}.recipe")));
    let store = bonsai_blockstore::open_store(&args.store.store, args.store.token()?)?;
    let opts = PushOptions {
        chunker: args.chunk.params()?,
        convergence: args.secret.convergence()?,
        name: args.name.clone().unwrap_or(file_name),
        source_format: image.format,
        cache: crate::args::key_cache(args.no_cache),
        ..Default::default()
    };
    let bar = Bar::new(quiet || args.json, Some(image.logical_size));
    let mut report = bonsai_core::push(image.reader, store.as_ref(), &recipe, &opts, &bar)
        .with_context(|| format!("push of {} failed", args.image.display()))?;
    report.source_format = source_format.name().into();
    report.files_read = files_read.iter().map(|p| p.display().to_string()).collect();
    Ok(report)
}

/// Runs the command.
pub fn run(args: PushArgs, quiet: bool) -> anyhow::Result<()> {
    let report = push(&args, quiet)?;
    if args.json {
        render::json(&report)
    } else {
        render::push(&report);
        Ok(())
    }
}
