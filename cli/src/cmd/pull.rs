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
        ..Default::default()
    };
    let bar = Bar::new(quiet || args.json, Some(recipe.logical_size));
    bonsai_core::pull(&recipe, store.as_ref(), &args.output, &opts, &bar)
        .with_context(|| format!("pull to {} failed", args.output.display()))
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
