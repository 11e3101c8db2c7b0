//! `bonsai pull`

use crate::args::PullArgs;
use crate::{progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PullOptions, PullReport, Recipe};

/// Pulls an image and returns the figures (also used by `demo`).
pub fn pull(args: &PullArgs, quiet: bool) -> anyhow::Result<PullReport> {
    let recipe = Recipe::open(&args.recipe)
        .with_context(|| format!("cannot use recipe {}", args.recipe.display()))?;
    let store = bonsai_blockstore::open_store(&args.store.store, args.store.token()?)?;
    let opts = PullOptions {
        convergence: args.secret.convergence()?,
        seeds: args.seed.clone(),
        cache: crate::args::key_cache(args.no_cache),
        in_place: args.in_place,
        discard_holes: args.discard_holes,
        ..Default::default()
    };
    let bar = Bar::new(quiet || args.json, Some(recipe.logical_size));
    let fail = || format!("pull to {} failed", args.output.display());
    let format: bonsai_core::image::OutputFormat = match args.output_format {
        Some(f) => f.into(),
        None => bonsai_core::image::OutputFormat::from_name(&args.output)
            .unwrap_or(bonsai_core::image::OutputFormat::Raw),
    };
    if format == bonsai_core::image::OutputFormat::Raw {
        return bonsai_core::pull(&recipe, store.as_ref(), &args.output, &opts, &bar)
            .with_context(fail);
    }
    anyhow::ensure!(
        !args.in_place,
        "--in-place writes raw images only; drop --output-format {} or --in-place",
        format.name()
    );
    // Other containers: rebuild and verify a raw image beside OUT, then convert it.
    let name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let raw = args.output.with_file_name(format!(".{name}.raw"));
    let mut report =
        bonsai_core::pull(&recipe, store.as_ref(), &raw, &opts, &bar).with_context(fail)?;
    bonsai_core::image::convert_raw(&raw, &args.output, format).with_context(fail)?;
    report.output = args.output.display().to_string();
    Ok(report)
}

/// Runs the command.
pub fn run(args: PullArgs, quiet: bool) -> anyhow::Result<()> {
    let report = pull(&args, quiet)?;
    if args.json {
        render::json(&report)
    } else {
        render::pull(&report);
        Ok(())
    }
}
