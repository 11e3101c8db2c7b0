//! `bonsai pull`

use crate::args::PullArgs;
use crate::exit::{Exit, Failed};
use crate::store::Access;
use crate::{preflight, progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PullOptions, PullReport, Recipe};

/// Pulls an image and returns the figures (also used by `demo`).
pub fn pull(args: &PullArgs, quiet: bool) -> anyhow::Result<PullReport> {
    preflight::pull_output(&args.output, args.force, args.in_place)?;
    let store = args.store.open(Access::Existing)?;
    let recipe = match &args.recipe_key.recipe_key {
        None => Recipe::open(&args.recipe)
            .with_context(|| format!("cannot use recipe {}", args.recipe.display()))?,
        Some(key) => sealed_recipe(args, key, store.as_ref())?,
    };
    let mut opts = PullOptions {
        convergence: args.secret.convergence()?,
        seeds: args.seed.clone(),
        cache: crate::args::key_cache(args.no_cache),
        force: args.force,
        in_place: args.in_place,
        discard_holes: args.discard_holes,
        recipe_path: args.recipe.clone(),
        ..Default::default()
    };
    let format: bonsai_core::image::OutputFormat = match args.output_format {
        Some(f) => f.into(),
        None => bonsai_core::image::OutputFormat::from_name(&args.output)
            .unwrap_or(bonsai_core::image::OutputFormat::Raw),
    };
    anyhow::ensure!(
        format == bonsai_core::image::OutputFormat::Raw || !args.in_place,
        "--in-place writes raw images only; drop --output-format {} or --in-place",
        format.name()
    );
    if format != bonsai_core::image::OutputFormat::Raw {
        // rebuilt and verified as raw beside OUT, then converted and published
        opts.convert = Some(std::sync::Arc::new(
            bonsai_core::image::convert::QemuConvert(format),
        ));
    }
    let bar = Bar::new(quiet || args.json, Some(recipe.logical_size));
    bonsai_core::pull(&recipe, store.as_ref(), &args.output, &opts, &bar)
        .with_context(|| format!("pull to {} failed", args.output.display()))
}

/// With --recipe-key, RECIPE names an image: its sealed recipe is fetched and opened.
fn sealed_recipe(
    args: &PullArgs,
    key: &std::path::Path,
    store: &dyn bonsai_core::BlockStore,
) -> anyhow::Result<Recipe> {
    let name = args.recipe.to_string_lossy();
    let key = bonsai_core::seal::RecipeKey::load(key)?;
    let sealed = store.get_sealed_recipe(&name)?.ok_or_else(|| {
        Failed::new(
            Exit::NotFound,
            format!(
                "store {} keeps no sealed recipe for image {name:?} (see `bonsai images`; push it with --keep-recipe)",
                store.describe()
            ),
        )
    })?;
    let bytes = bonsai_core::seal::open(&name, &sealed, &key)?;
    Recipe::read_from(&bytes[..])
        .with_context(|| format!("sealed recipe of {name} from the store is not a valid recipe"))
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
