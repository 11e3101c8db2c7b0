//! The command line (clap derive). Flags become core options before anything runs.

use bonsai_core::recipe::SourceFormat;
use bonsai_core::{ChunkerParams, Convergence};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// bonsai moves virtual-machine disk images by sending only the blocks the far side lacks.
///
/// An image is cut into content-defined chunks; each chunk is compressed and encrypted
/// with a key derived from its own content, so identical chunks from any VM become the
/// same block and are stored once. `push` uploads what the store lacks and writes a small
/// recipe; `pull` rebuilds the image from the recipe, verified end to end.
///
/// STORE is `http(s)://host:port` (a `bonsai serve`) or a directory (an embedded store,
/// no server needed).
#[derive(Parser, Debug)]
#[command(name = "bonsai", version, propagate_version = true)]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Upload the blocks of IMAGE that the store lacks and write a recipe.
    ///
    /// Example: bonsai push vm.raw --store http://store:7412 -o vm.recipe
    Push(PushArgs),
    /// Rebuild an image from a recipe, fetching only blocks not found locally.
    ///
    /// Example: bonsai pull vm.recipe --store http://store:7412 -o vm.raw --seed old-vm.raw
    Pull(PullArgs),
    /// Run the block store server.
    ///
    /// Example: bonsai serve --listen 127.0.0.1:7412 --data /srv/bonsai --token-file tokens
    Serve(bonsai_blockstore::ServeArgs),
    /// Show store-wide figures: blocks, bytes stored, images, dedup ratio.
    Stats(StatsArgs),
    /// Dedup figures for images in order, without a store: what would each one add?
    ///
    /// Example: bonsai analyze debian-minimal.raw debian-web.raw debian-db.raw
    Analyze(AnalyzeArgs),
    /// The whole story in a few seconds: two related images pushed to an embedded
    /// store in a temporary directory, the second pulled back and verified.
    Demo(DemoArgs),
    /// Inspect a recipe.
    #[command(subcommand)]
    Recipe(RecipeCommand),
    /// Describe a disk image: format, virtual size, allocated bytes, backing chain.
    ///
    /// Example: bonsai inspect vm.qcow2
    Inspect(InspectArgs),
    /// List registered images: size, blocks, bytes only each one holds.
    ///
    /// Example: bonsai images --store http://store:7412
    Images(crate::cmd::images::ImagesArgs),
    /// Unregister images (admin token); `bonsai gc` then frees blocks only they used.
    ///
    /// Example: bonsai forget vm-2024-01 vm-2024-02 --store http://store:7412
    Forget(crate::cmd::forget::ForgetArgs),
    /// Delete blocks no registered image uses (admin token), safe while others push:
    /// a block is deleted only after staying unreferenced for the grace period.
    ///
    /// Example: bonsai gc --store http://store:7412 --dry-run
    Gc(crate::cmd::gc::GcArgs),
    /// Verify every block of the store (admin token); damaged blocks are quarantined and
    /// dropped, so the next push of an image holding them uploads them again.
    ///
    /// Example: bonsai check --store http://store:7412 --read-data
    Check(crate::cmd::check::CheckArgs),
}

/// `bonsai inspect`
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Image file or block device.
    pub image: PathBuf,
    /// Image format (detected from the content if not given).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<SourceFormat>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_format(s: &str) -> Result<SourceFormat, String> {
    bonsai_core::image::parse_format(s)
}

/// Formats `pull` can write.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Raw disk image, sparse (holes are not written).
    Raw,
    /// qcow2 (the verified raw image converted with `qemu-img convert`).
    Qcow2,
}

/// `bonsai recipe ...`
#[derive(Subcommand, Debug)]
pub enum RecipeCommand {
    /// Print what a recipe holds (--json: every extent with id and key).
    Show {
        /// The recipe file.
        recipe: PathBuf,
        /// Full JSON rendering.
        #[arg(long)]
        json: bool,
    },
    /// Say whether the store holds every block the recipe needs, without downloading.
    Check {
        /// The recipe file.
        recipe: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a new recipe key (an age identity) for `push --keep-recipe`, mode 0600.
    Keygen {
        /// Key file to create (never overwritten).
        out: PathBuf,
    },
}

/// How to reach a store.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// `http(s)://host:port` or a directory path (embedded store).
    #[arg(long, short = 's', value_name = "STORE")]
    pub store: String,
    /// File holding the bearer token (else the BONSAI_TOKEN environment variable).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM file of a private CA to trust for an `https://` store.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl StoreArgs {
    /// The token from the file or the environment.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        if let Some(p) = &self.token_file {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("reading token file {}", p.display()))?;
            return Ok(Some(t.trim().to_string()));
        }
        Ok(std::env::var("BONSAI_TOKEN").ok().filter(|t| !t.is_empty()))
    }

    /// Opens the store with its operations (images, gc, check, sealed recipes).
    pub fn open_admin(&self) -> anyhow::Result<Box<dyn bonsai_core::BlockStore>> {
        bonsai_blockstore::open_admin_store(&self.store, self.token()?, self.ca_file.as_deref())
    }
}

/// `--keep-recipe` / `--recipe-key`: a recipe sealed to its owner and kept by the store.
#[derive(Args, Debug, Clone)]
pub struct RecipeKeyArgs {
    /// Key file sealing recipes kept by the store: an age identity (`bonsai recipe keygen`)
    /// or a passphrase on its first line. The store never sees it.
    #[arg(long, value_name = "FILE")]
    pub recipe_key: Option<PathBuf>,
}

/// Convergence secret and chunking.
#[derive(Args, Debug, Clone)]
pub struct SecretArgs {
    /// File with a private convergence secret. Dedup then works only among holders of the
    /// same secret, and outsiders cannot confirm guesses about your data. Default: the
    /// public secret (dedup with everyone).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The convergence secret to use.
    pub fn convergence(&self) -> anyhow::Result<Convergence> {
        match &self.secret_file {
            None => Ok(Convergence::public()),
            // docs/FORMAT.md "Convergence secret": the bytes less one final line end
            Some(p) => Ok(Convergence::from_secret_file(p)?),
        }
    }
}

/// Chunker choice.
#[derive(Args, Debug, Clone)]
pub struct ChunkArgs {
    /// Average chunk size in KiB (FastCDC: min = avg/4, max = avg*4).
    #[arg(long, default_value_t = 64, value_name = "KIB")]
    pub chunk_kib: u32,
    /// Fixed-size chunks of --chunk-kib instead of content-defined ones.
    #[arg(long)]
    pub fixed: bool,
}

impl ChunkArgs {
    /// The chunker parameters, validated.
    pub fn params(&self) -> anyhow::Result<ChunkerParams> {
        let size = self.chunk_kib.saturating_mul(1024);
        let p = if self.fixed {
            ChunkerParams::fixed(size)
        } else {
            ChunkerParams::fastcdc(size)
        };
        p.validate()?;
        Ok(p)
    }
}

/// The local key → id cache unless `--no-cache`; `None` (with a warning) if it cannot open.
pub fn key_cache(no_cache: bool) -> Option<std::sync::Arc<bonsai_core::cache::KeyCache>> {
    if no_cache {
        return None;
    }
    bonsai_core::cache::KeyCache::open_default().map(std::sync::Arc::new)
}

/// `bonsai push`
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Disk image (raw, sparse raw, qcow2) or block device.
    pub image: PathBuf,
    /// Image format (detected from the content if not given).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<SourceFormat>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to write the recipe [default: ./IMAGE-NAME.recipe].
    #[arg(long, short = 'o', value_name = "RECIPE")]
    pub output: Option<PathBuf>,
    /// Name to register the image under in the store [default: the image's file name].
    #[arg(long)]
    pub name: Option<String>,
    /// Print the figures as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub chunk: ChunkArgs,
    /// Do not use the local key → id cache (~/.cache/bonsai; BONSAI_CACHE_DIR moves it),
    /// which lets a re-push skip compressing and encrypting chunks seen before.
    #[arg(long)]
    pub no_cache: bool,
    /// Also keep the recipe in the store, sealed with --recipe-key, so that
    /// `bonsai pull NAME --recipe-key F` works on a machine without the recipe file.
    #[arg(long, requires = "recipe_key")]
    pub keep_recipe: bool,
    #[command(flatten)]
    pub recipe_key: RecipeKeyArgs,
}

/// `bonsai pull`
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Recipe written by `bonsai push` — or, with --recipe-key, the NAME of an image whose
    /// sealed recipe the store keeps.
    pub recipe: PathBuf,
    #[command(flatten)]
    pub recipe_key: RecipeKeyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to write the image (written beside it under a temporary name, renamed when verified).
    #[arg(long, short = 'o', value_name = "OUT")]
    pub output: PathBuf,
    /// Format to write.
    #[arg(long, value_enum, default_value_t = OutputFormat::Raw)]
    pub output_format: OutputFormat,
    /// Do not record the pulled blocks in the local key → id cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Write straight into OUT instead of a temporary file renamed at the end (always so
    /// when OUT is a block device). Blocks OUT already holds at the right place are not
    /// fetched, so pulling over an older copy of the image fetches only what changed.
    #[arg(long)]
    pub in_place: bool,
    /// With --in-place or a block device: make the image's holes read as zeros (discard on
    /// devices, punched holes in files). Without it, holes must already read as zeros or
    /// verification fails.
    #[arg(long)]
    pub discard_holes: bool,
    /// Local file whose matching chunks are used instead of downloading (repeatable);
    /// an older version of the same image is ideal.
    #[arg(long, value_name = "FILE")]
    pub seed: Vec<PathBuf>,
    /// Print the figures as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// `bonsai stats`
#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bonsai analyze`
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Images, in the order they would be pushed.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print JSON (one object with a row per image).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chunk: ChunkArgs,
}

/// `bonsai demo`
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's files in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}
