//! `bonsai pull`

use crate::args::{OutputFormat, PullArgs};
use crate::{progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PullOptions, PullReport, Recipe};

/// Pulls an image and returns the figures (also used by `demo`).
pub fn pull(args: &PullArgs, quiet: bool) -> anyhow::Result<PullReport> {
    let admin = args.store.open_admin()?;
    let store: &dyn bonsai_core::BlockStore = admin.as_ref();
    let recipe = match &args.recipe_key.recipe_key {
        None => Recipe::open(&args.recipe)
            .with_context(|| format!("cannot use recipe {}", args.recipe.display()))?,
        Some(key) => sealed_recipe(args, key, admin.as_ref())?,
    };
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
        return bonsai_core::pull(&recipe, store, &args.output, &opts, &bar).with_context(fail);
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
    let mut report = bonsai_core::pull(&recipe, store, &raw, &opts, &bar).with_context(fail)?;
    bonsai_core::image::convert_raw_to_qcow2(&raw, &args.output).with_context(fail)?;
    report.output = args.output.display().to_string();
    Ok(report)
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
        anyhow::anyhow!(
            "store {} keeps no sealed recipe for image {name:?} (push it with --keep-recipe)",
            store.describe()
        )
    })?;
    let bytes = bonsai_core::seal::open(&name, &sealed, &key)?;
    Recipe::read_from(&bytes[..])
        .with_context(|| format!("sealed recipe of {name} from the store is not a valid recipe"))
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
