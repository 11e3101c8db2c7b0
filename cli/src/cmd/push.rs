//! `bonsai push`

use crate::args::PushArgs;
use crate::store::Access;
use crate::{preflight, progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PushOptions, PushReport};
use std::path::{Path, PathBuf};

/// Pushes an image and returns the figures (also used by `demo`). A push whose blocks a
/// concurrent `gc` collected is refused at registration (nothing is registered, no recipe
/// written) and is run again, up to three times in all.
pub(crate) fn push(args: &PushArgs, quiet: bool) -> anyhow::Result<PushReport> {
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
    let name = args.name.clone().unwrap_or_else(|| file_name.clone());
    if let Some(problem) = bonsai_core::name::name_problem(&name) {
        let what = if args.name.is_some() {
            "--name"
        } else {
            "the image's file name"
        };
        return Err(crate::exit::Failed::new(
            crate::exit::Exit::Usage,
            format!("{what}: {problem}; give a legal one with --name"),
        )
        .into());
    }
    let image = bonsai_core::image::open_disk(&args.image, &args.image_opts.options())
        .with_context(|| format!("cannot read image {}", args.image.display()))?;
    let logical_size = image.disk.size();
    preflight::image_not_empty_device(&args.image, logical_size)?;
    let store = args.store.open_first(Access::ExistingOrEmpty)?;
    let key = match (&args.recipe_key.recipe_key, args.keep_recipe) {
        (Some(path), true) => Some(bonsai_core::seal::RecipeKey::load(path)?),
        _ => None,
    };
    let opts = PushOptions {
        chunker: args.chunk.params()?,
        convergence: args.secret.convergence()?,
        name,
        source_format: image.format.source_format(),
        cache: crate::args::key_cache(args.no_cache),
        force: args.force,
        image_path: args.image.clone(),
        ..Default::default()
    };
    let bar = Bar::new(quiet || args.json, Some(logical_size));
    let _interrupt = bonsai_core::image::on_signal::note(&format!(
        "no version of {} was registered and no recipe written; the blocks already uploaded stay in the store, so the same push again sends only the rest",
        bonsai_core::name::for_terminal(&opts.name)
    ));
    let mut attempt = 1;
    let mut report = loop {
        match bonsai_core::push(image.disk.as_ref(), store.as_ref(), &recipe, &opts, &bar) {
            Err(e) if attempt < 3 && collected_during_push(&e) => {
                tracing::warn!("{e}; pushing again");
                attempt += 1;
            }
            other => {
                break other.with_context(|| format!("push of {} failed", args.image.display()))?
            }
        }
    };
    private(&recipe)?;
    if let Some(key) = key {
        keep_recipe(&recipe, &report, &key, store.as_ref())?;
    }
    report.source_format = image.format.name().into();
    report.files_read = image
        .files_read
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    Ok(report)
}

/// A registration refused because a block the store had confirmed was collected since
/// by a `gc` (docs/OPERATING.md): nothing was registered, so the push can simply run again.
fn collected_during_push(e: &bonsai_core::Error) -> bool {
    matches!(
        e,
        bonsai_core::Error::Store(bonsai_core::StoreError::NotFound(_))
    )
}

/// Seals and signs the recipe just written for the version the push registered, and
/// hands it to the store.
fn keep_recipe(
    recipe: &Path,
    report: &PushReport,
    key: &bonsai_core::seal::RecipeKey,
    store: &dyn bonsai_core::BlockStore,
) -> anyhow::Result<()> {
    let name = &report.name;
    anyhow::ensure!(
        report.version > 0,
        "store {} keeps no image versions, so it cannot keep sealed recipes",
        store.describe()
    );
    let bytes =
        std::fs::read(recipe).with_context(|| format!("reading recipe {}", recipe.display()))?;
    let to = bonsai_core::seal::Binding {
        name,
        version: report.version,
        image_hash: &report.image_hash,
    };
    let sealed = bonsai_core::seal::seal(&to, &bytes, key)?;
    let vref = format!("{name}@{}", report.version);
    store
        .put_sealed_recipe(&vref, &sealed)
        .with_context(|| format!("keeping the sealed recipe of {vref} in the store"))?;
    tracing::info!(version = %vref, bytes = sealed.len(), "sealed recipe kept by the store");
    Ok(())
}

/// A recipe is the key to its image: owner-only. (The engine's publish step should
/// create it so; this makes sure whatever wrote it.)
fn private(recipe: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(recipe, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make recipe {} private", recipe.display()))
}

/// Runs the command.
pub(crate) fn run(args: PushArgs, quiet: bool) -> anyhow::Result<()> {
    let report = push(&args, quiet)?;
    let store = args.store.shown();
    if args.json {
        render::json_with_store(&report, &store)
    } else {
        render::text(|out| render::push(out, &report, &store))
    }
}
