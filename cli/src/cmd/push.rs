//! `bonsai push`

use crate::args::PushArgs;
use crate::{progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PushOptions, PushReport};
use std::path::PathBuf;

/// Pushes an image and returns the figures (also used by `demo`). A push whose blocks a
/// concurrent `gc` collected is refused at registration (nothing is registered, no recipe
/// written) and is run again, up to three times in all.
pub fn push(args: &PushArgs, quiet: bool) -> anyhow::Result<PushReport> {
    let store = args.store.open_admin()?;
    let mut attempt = 1;
    let report = loop {
        match push_once(args, quiet, store.as_ref()) {
            Err(e) if attempt < 3 && collected_during_push(&e) => {
                tracing::warn!("{e:#}; pushing again");
                attempt += 1;
            }
            other => break other?,
        }
    };
    if args.keep_recipe {
        keep_recipe(args, &report, store.as_ref())?;
    }
    Ok(report)
}

/// A registration refused because a block the store had confirmed was collected since.
fn collected_during_push(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<bonsai_core::Error>(),
        Some(bonsai_core::Error::Store(
            bonsai_core::StoreError::NotFound(_)
        ))
    )
}

/// Seals the recipe just written and hands it to the store under the image's name.
fn keep_recipe(
    args: &PushArgs,
    report: &PushReport,
    store: &dyn bonsai_core::BlockStore,
) -> anyhow::Result<()> {
    let key_path = args
        .recipe_key
        .recipe_key
        .as_deref()
        .expect("clap requires it");
    let key = bonsai_core::seal::RecipeKey::load(key_path)?;
    let path = std::path::Path::new(&report.recipe);
    let bytes =
        std::fs::read(path).with_context(|| format!("reading recipe {}", path.display()))?;
    let name = registered_name(args);
    let sealed = bonsai_core::seal::seal(&name, &bytes, &key)?;
    store
        .put_sealed_recipe(&name, &sealed)
        .with_context(|| format!("keeping the sealed recipe of {name} in the store"))?;
    tracing::info!(%name, bytes = sealed.len(), "sealed recipe kept by the store");
    Ok(())
}

fn registered_name(args: &PushArgs) -> String {
    args.name.clone().unwrap_or_else(|| {
        args.image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into())
    })
}

fn push_once(
    args: &PushArgs,
    quiet: bool,
    store: &dyn bonsai_core::BlockStore,
) -> anyhow::Result<PushReport> {
    let image = bonsai_core::image::open_image(&args.image, args.format)
        .with_context(|| format!("cannot read image {}", args.image.display()))?;
    let file_name = args
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let recipe = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{file_name}.recipe")));
    let opts = PushOptions {
        chunker: args.chunk.params()?,
        convergence: args.secret.convergence()?,
        name: registered_name(args),
        source_format: image.format,
        cache: crate::args::key_cache(args.no_cache),
        ..Default::default()
    };
    let bar = Bar::new(quiet || args.json, Some(image.logical_size));
    let report = bonsai_core::push(image.reader, store, &recipe, &opts, &bar)
        .with_context(|| format!("push of {} failed", args.image.display()))?;
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
