//! `bonsai pull`

use crate::args::{OutputFormat, PullArgs};
use crate::store::Access;
use crate::{preflight, progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PullOptions, PullReport, Recipe};

/// Pulls an image and returns the figures (also used by `demo`).
pub fn pull(args: &PullArgs, quiet: bool) -> anyhow::Result<PullReport> {
    preflight::pull_output(&args.output, args.force, args.in_place)?;
    let store = args.store.open(Access::Existing)?;
    let recipe = Recipe::open(&args.recipe)
        .with_context(|| format!("cannot use recipe {}", args.recipe.display()))?;
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
    if args.output_format == OutputFormat::Raw {
        return bonsai_core::pull(&recipe, store.as_ref(), &args.output, &opts, &bar)
            .with_context(fail);
    }
    anyhow::ensure!(
        !args.in_place,
        "--in-place writes raw images only; drop --output-format qcow2 or --in-place"
    );
    // qcow2: rebuild and verify a raw image beside OUT, then convert it.
    let name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let raw = args.output.with_file_name(format!(".{name}.raw"));
    let mut report =
        bonsai_core::pull(&recipe, store.as_ref(), &raw, &opts, &bar).with_context(fail)?;
    bonsai_core::image::convert_raw_to_qcow2(&raw, &args.output).with_context(fail)?;
    report.output = args.output.display().to_string();
    Ok(report)
}

/// Runs the command.
pub fn run(args: PullArgs, quiet: bool) -> anyhow::Result<()> {
    let report = pull(&args, quiet)?;
    let store = args.store.store.to_string();
    if args.json {
        render::json_with_store(&report, &store)
    } else {
        render::text(|out| render::pull(out, &report, &store))
    }
}
