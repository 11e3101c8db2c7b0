//! `bonsai pull`

use crate::args::PullArgs;
use crate::exit::{Exit, Failed};
use crate::store::Access;
use crate::{preflight, progress::Bar, render};
use anyhow::Context;
use bonsai_core::{PullOptions, PullReport, Recipe};

/// What a pull needs, checked and opened: the store, the recipe, the core options.
struct Prepared {
    store: Box<dyn bonsai_core::BlockStore>,
    recipe: Recipe,
    opts: PullOptions,
    format: bonsai_core::pull::convert::OutputFormat,
}

/// Checks every input and opens the store and recipe, before any byte is written.
fn prepare(args: &PullArgs) -> anyhow::Result<Prepared> {
    preflight::pull_output(&args.output, args.force, args.in_place)?;
    preflight::seeds(&args.seed)?;
    let store = args.store.open_tiered(Access::Existing)?;
    let recipe = match &args.recipe_key.recipe_key {
        None => Recipe::open(&args.recipe)
            .with_context(|| format!("cannot use recipe {}", args.recipe.display()))?,
        Some(key) => sealed_recipe(&args.recipe, key, store.as_ref())?,
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
    let format: bonsai_core::pull::convert::OutputFormat = match args.output_format {
        Some(f) => f.into(),
        None => bonsai_core::pull::convert::OutputFormat::from_name(&args.output)
            .unwrap_or(bonsai_core::pull::convert::OutputFormat::Raw),
    };
    if replaced_copy_is_a_seed(args, format) {
        // the older copy being replaced holds most blocks: read them (verified by key)
        // instead of fetching them again
        opts.seeds.push(args.output.clone());
    }
    anyhow::ensure!(
        format == bonsai_core::pull::convert::OutputFormat::Raw || !args.in_place,
        "--in-place writes raw images only; drop --output-format {} or --in-place",
        format.name()
    );
    if format != bonsai_core::pull::convert::OutputFormat::Raw {
        // rebuilt and verified as raw beside OUT, then converted and published
        opts.convert = Some(std::sync::Arc::new(
            bonsai_core::pull::convert::QemuConvert(format),
        ));
    }
    Ok(Prepared {
        store,
        recipe,
        opts,
        format,
    })
}

/// Pulls an image and returns the figures (also used by `demo`).
pub(crate) fn pull(args: &PullArgs, quiet: bool) -> anyhow::Result<PullReport> {
    let Prepared {
        store,
        recipe,
        opts,
        format,
    } = prepare(args)?;
    let bar = Bar::new(quiet || args.json, Some(recipe.logical_size));
    let report = bonsai_core::pull(&recipe, store.as_ref(), &args.output, &opts, &bar)
        .with_context(|| format!("pull to {} failed", args.output.display()))?;
    let size = recipe.logical_size;
    let padded = bonsai_core::pull::convert::padded_size(format, size);
    if padded != size && !quiet {
        eprintln!(
            "bonsai: note: {} counts whole 512-byte sectors: {} holds the {size}-byte image and {} zero bytes after it",
            format.name(),
            args.output.display(),
            padded - size
        );
    }
    Ok(report)
}

/// `--dry-run`: what the pull would take from where, and whether the store holds it;
/// nothing is written. Exit 4 when the store lacks blocks the pull would need.
fn dry_run(args: &PullArgs) -> anyhow::Result<()> {
    let p = prepare(args)?;
    let run = bonsai_core::pull::dry_run(&p.recipe, p.store.as_ref(), &args.output, &p.opts)
        .with_context(|| format!("pull to {} cannot run", args.output.display()))?;
    let store = args.store.shown();
    if args.json {
        render::json_with_store(&run, &store)?;
    } else {
        render::text(|out| render::pull_dry_run(out, &run, &store))?;
    }
    if run.missing_blocks > 0 {
        return Err(Failed::new(
            Exit::NotFound,
            format!(
                "store {store} lacks {} of the blocks this pull would fetch ({}); push the image again, or pull from a store that has them",
                run.missing_blocks,
                bonsai_core::stats::human_bytes(run.missing_bytes)
            ),
        )
        .into());
    }
    Ok(())
}

/// Whether OUT is an existing raw image that `--force` replaces (not written in place):
/// then it is a seed like any other.
fn replaced_copy_is_a_seed(
    args: &PullArgs,
    format: bonsai_core::pull::convert::OutputFormat,
) -> bool {
    args.force
        && !args.in_place
        && format == bonsai_core::pull::convert::OutputFormat::Raw
        && std::fs::metadata(&args.output).is_ok_and(|m| m.is_file())
        && !args.seed.contains(&args.output)
}

/// With --recipe-key, RECIPE names an image (`NAME`, the latest version, or `NAME@V`):
/// the version is looked up, its sealed recipe fetched, its signature checked, and it must
/// be bound to exactly that version and the image hash registered with it.
pub(crate) fn sealed_recipe(
    recipe: &std::path::Path,
    key: &std::path::Path,
    store: &dyn bonsai_core::BlockStore,
) -> anyhow::Result<Recipe> {
    let asked = bonsai_core::name::VersionRef::parse(&recipe.to_string_lossy())
        .map_err(|e| Failed::new(Exit::Usage, e))?;
    let key = bonsai_core::seal::RecipeKey::load(key)?;
    let version = chosen_version(&asked, store)?;
    let vref = version.version_ref().to_string();
    let shown = bonsai_core::name::for_terminal(&vref);
    let hash: bonsai_core::ImageHash = version
        .image_hash
        .as_deref()
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| {
            Failed::new(
                Exit::Verify,
                format!("store {} registered {shown} without an image hash; its sealed recipe cannot be checked", store.describe()),
            )
        })?;
    let sealed = store.get_sealed_recipe(&vref)?.ok_or_else(|| {
        Failed::new(
            Exit::NotFound,
            format!(
                "store {} keeps no sealed recipe for {shown} (see `bonsai images`; push it with --keep-recipe)",
                store.describe()
            ),
        )
    })?;
    let to = bonsai_core::seal::Binding {
        name: &version.name,
        version: version.version,
        image_hash: &hash,
    };
    let bytes = bonsai_core::seal::open(&to, &sealed, &key)?;
    let recipe = Recipe::read_from(&bytes[..]).with_context(|| {
        format!("sealed recipe of {shown} from the store is not a valid recipe")
    })?;
    if recipe.image_hash != hash {
        return Err(Failed::new(
            Exit::Verify,
            format!(
                "the sealed recipe of {shown} describes another image than the version registered"
            ),
        )
        .into());
    }
    Ok(recipe)
}

/// The version a pull by name means: the one given, or the newest.
fn chosen_version(
    asked: &bonsai_core::name::VersionRef,
    store: &dyn bonsai_core::BlockStore,
) -> anyhow::Result<bonsai_core::store::ImageInfo> {
    let newest = store
        .images()?
        .into_iter()
        .filter(|i| i.name == asked.name && asked.version.is_none_or(|v| v == i.version))
        .max_by_key(|i| i.version);
    newest.ok_or_else(|| {
        Failed::new(
            Exit::NotFound,
            format!(
                "store {} has no image {} (see `bonsai images`)",
                store.describe(),
                bonsai_core::name::for_terminal(&asked.to_string())
            ),
        )
        .into()
    })
}

/// Runs the command.
pub(crate) fn run(args: PullArgs, quiet: bool) -> anyhow::Result<()> {
    if args.dry_run {
        return dry_run(&args);
    }
    let report = pull(&args, quiet)?;
    let store = args.store.shown();
    if args.json {
        render::json_with_store(&report, &store)
    } else {
        render::text(|out| render::pull(out, &report, &store))
    }
}
