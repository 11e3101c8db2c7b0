//! The command line (clap derive). Flags become core options before anything runs.

use crate::store::{Access, StoreSpec};
use bonsai_core::image::ImageFormat;
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
/// STORE is `http(s)://host:port` (a `bonsai serve`) or a store directory (an embedded
/// store, no server needed; create one with `bonsai init DIR`).
///
/// Exit status: 0 ok, 1 other failure, 2 usage or refused input, 3 auth, 4 not found,
/// 5 verification failed, 6 network, 7 local I/O; 130 when interrupted by Ctrl-C.
#[derive(Parser, Debug)]
#[command(name = "bonsai", version = VERSION, propagate_version = true)]
pub(crate) struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log detail on stderr (-v: info, -vv: debug); store retries show from -v.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `--version`: the version and the build it came from (commit, target, compiler).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("BONSAI_BUILD"), ")");

/// Subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Upload the blocks of IMAGE that the store lacks and write a recipe.
    ///
    /// The recipe is the only key to the image: anyone holding it and access to the store
    /// can read the image. It is written with mode 0600; keep it like a private key.
    /// An existing recipe is never overwritten without --force.
    #[command(after_long_help = PUSH_EXAMPLES)]
    Push(PushArgs),
    /// Rebuild an image from a recipe, fetching only blocks not found locally.
    ///
    /// OUT is written under a temporary name beside it and renamed only once the whole
    /// image is verified against the recipe. An existing OUT is never overwritten without
    /// --force (or --in-place, which means to write into it).
    #[command(after_long_help = PULL_EXAMPLES)]
    Pull(PullArgs),
    /// Serve an image as a network block device (NBD) while it arrives: boot before the
    /// pull ends.
    ///
    /// Reads are answered from LOCAL where the blocks already are and verified; missing
    /// blocks are fetched first (verified as pull verifies them). Meanwhile the rest is
    /// fetched in the background; when all is in, LOCAL is verified like a pull and
    /// published. Read-only: put a qcow2 overlay in front for a VM's writes. Stop it with
    /// Ctrl-C or SIGTERM; run it again to resume (nothing fetched is fetched twice).
    #[command(after_long_help = EXPORT_EXAMPLES)]
    Export(ExportArgs),
    /// Run the block store server.
    ///
    /// Prints `listening on http://ADDR` on stdout once the socket is bound; logs one line
    /// per request on stderr. SIGTERM or Ctrl-C finish in-flight requests, then exit 0.
    #[command(after_long_help = SERVE_EXAMPLES)]
    Serve(bonsai_blockstore::ServeArgs),
    /// Make DIR an empty embedded store (creating it and its parents).
    ///
    /// Commands never create a store directory by themselves, so a mistyped --store
    /// cannot become a new, empty store. An existing store is left as it is.
    ///
    /// Example: bonsai init /srv/bonsai && bonsai push vm.raw --store /srv/bonsai
    Init(InitArgs),
    /// Show store-wide figures: blocks, bytes stored, images, overall ratio.
    Stats(StatsArgs),
    /// Dedup figures of a store: per image, its growth, and what images share.
    ///
    /// Example: bonsai report --store http://store:7412 --html report.html
    Report(ReportArgs),
    /// Dedup figures for images in order, without a store: what would each one add?
    ///
    /// Example: bonsai analyze debian-minimal.raw debian-web.raw debian-db.raw
    Analyze(AnalyzeArgs),
    /// The whole story in a few seconds: two related images pushed to an embedded
    /// store in a temporary directory, the second pulled back and verified.
    Demo(DemoArgs),
    /// Recipes: show one, check a store holds all its blocks, make a key for sealed recipes.
    ///
    /// Example: bonsai recipe check vm.recipe --store http://store:7412
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
    /// Copy image versions to another store, sending only the blocks it lacks.
    ///
    /// Manifests, blocks, sealed recipes and boot profiles; each version keeps its number
    /// and is registered at the target only once all its blocks are there. Run it again
    /// after an interruption: it sends only what is still missing.
    ///
    /// Examples:
    ///   bonsai sync --from http://eu:7412 --to http://us:7412 web@3 db
    ///   bonsai sync --from /srv/bonsai --to https://far:7412 --all --limit-rate 20M
    Sync(crate::cmd::sync::SyncArgs),
    /// Print a shell completion script on stdout.
    ///
    /// Examples:
    ///   bonsai completions bash > /etc/bash_completion.d/bonsai
    ///   bonsai completions zsh > "${fpath[1]}/_bonsai"
    ///   bonsai completions fish > ~/.config/fish/completions/bonsai.fish
    Completions(CompletionsArgs),
    /// Write man pages (bonsai.1, bonsai-push.1, ...) into DIR.
    ///
    /// Example: bonsai man /usr/local/share/man/man1 && man bonsai-push
    Man(ManArgs),
}

/// `bonsai completions`
#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `bonsai man`
#[derive(Args, Debug)]
pub(crate) struct ManArgs {
    /// Existing directory to write the pages into.
    pub dir: PathBuf,
}

const EXPORT_EXAMPLES: &str = "\
Examples:
  # serve a recipe; LOCAL fills in the background
  bonsai export vm.recipe --store http://store:7412 --socket /run/vm.sock -o /var/lib/vm.raw

  # the VM boots from it, writing into a qcow2 overlay
  qemu-img create -f qcow2 -b nbd+unix:///bonsai?socket=/run/vm.sock -F raw vm-overlay.qcow2
  qemu-system-x86_64 -drive file=vm-overlay.qcow2,if=virtio ...

  # once `filled` is said, make the overlay point at the local copy
  qemu-img rebase -u -b /var/lib/vm.raw -F raw vm-overlay.qcow2
";

const PUSH_EXAMPLES: &str = "\
Examples:
  # to a server; writes vm.raw.recipe in the current directory
  bonsai push vm.raw --store http://store.example:7412 --token-file ~/.bonsai-token

  # to an embedded store directory (made once with `bonsai init`), recipe named
  bonsai init /srv/bonsai
  bonsai push vm.qcow2 --store /srv/bonsai -o vm-2026-11.recipe

  # a private convergence secret: dedup only among holders of the same secret
  bonsai push vm.raw --store http://store:7412 --secret-file team.secret --json";

const PULL_EXAMPLES: &str = "\
Examples:
  # rebuild vm.raw, verified against the recipe
  bonsai pull vm.recipe --store http://store.example:7412 -o vm.raw

  # fetch only what an older copy lacks
  bonsai pull vm-v2.recipe --store http://store:7412 -o vm-v2.raw --seed vm-v1.raw

  # update an older copy in place, or write a block device
  bonsai pull vm-v2.recipe --store /srv/bonsai -o vm.raw --in-place --discard-holes
  bonsai pull vm.recipe --store /srv/bonsai -o /dev/vdb";

const SERVE_EXAMPLES: &str = "\
Examples:
  # a store on loopback for this machine only, no tokens
  bonsai serve --listen 127.0.0.1:7412 --data /srv/bonsai

  # a shared store: lines of `ROLE TOKEN` (role read or write) in tokens.txt
  bonsai serve --listen 0.0.0.0:7412 --data /srv/bonsai --token-file tokens.txt --public-read

  # a free port for tests; the address is printed on stdout
  bonsai serve --listen 127.0.0.1:0 --data /tmp/store";

/// `bonsai init`
#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// Directory to make a store (created if missing; must be empty or a store).
    pub dir: PathBuf,
}

/// `bonsai inspect`
#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// Image file or block device.
    pub image: PathBuf,
    #[command(flatten)]
    pub image_opts: ImageArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_format(s: &str) -> Result<ImageFormat, String> {
    bonsai_core::image::parse_format(s)
}

/// How an image is opened: the same options for push, analyze and inspect, which open
/// images the same way.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ImageArgs {
    /// Image format (detected from the content if not given): raw, qcow2, vmdk, vhdx,
    /// vpc, vdi, qed, parallels, luks.
    #[arg(long, value_parser = parse_format)]
    pub format: Option<ImageFormat>,
    /// Open the files the image names (backing file, external data file, vmdk extents)
    /// even though its format was detected from content; naming the format with
    /// --format does the same.
    #[arg(long)]
    pub follow_references: bool,
    /// File holding the passphrase of an encrypted image (LUKS, encrypted qcow2): its
    /// exact bytes, as qemu-img --object secret,file= reads them.
    #[arg(long, value_name = "FILE")]
    pub image_secret_file: Option<PathBuf>,
}

impl ImageArgs {
    /// The core's options for opening an image.
    pub(crate) fn options(&self) -> bonsai_core::image::OpenOptions {
        bonsai_core::image::OpenOptions {
            format: self.format,
            follow_references: self.follow_references,
            secret_file: self.image_secret_file.clone(),
        }
    }
}

/// Formats `pull` can write.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Raw disk image, sparse (holes are not written).
    Raw,
    /// qcow2 (the verified raw image converted with `qemu-img convert`, then compared).
    Qcow2,
    /// vmdk (monolithicSparse), converted likewise.
    Vmdk,
    /// vhdx (dynamic), converted likewise.
    Vhdx,
    /// vhd (dynamic, exact size: no CHS rounding), converted likewise.
    Vpc,
}

impl From<OutputFormat> for bonsai_core::pull::convert::OutputFormat {
    fn from(f: OutputFormat) -> Self {
        use bonsai_core::pull::convert::OutputFormat as O;
        match f {
            OutputFormat::Raw => O::Raw,
            OutputFormat::Qcow2 => O::Qcow2,
            OutputFormat::Vmdk => O::Vmdk,
            OutputFormat::Vhdx => O::Vhdx,
            OutputFormat::Vpc => O::Vpc,
        }
    }
}

/// `bonsai recipe ...`
#[derive(Subcommand, Debug)]
pub(crate) enum RecipeCommand {
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
pub(crate) struct StoreArgs {
    /// `http(s)://host:port` (a `bonsai serve`) or an existing store directory (default:
    /// `store` in the config file, ~/.config/bonsai/config.toml). pull, export and
    /// `recipe check` take it more than once, nearest first: each block comes from the first
    /// store holding it (the same token is shown to each); push uploads to the first.
    #[arg(long, short = 's', value_name = "STORE", env = "BONSAI_STORE", value_parser = crate::store::parse_store, required = true, action = clap::ArgAction::Append)]
    pub store: Vec<StoreSpec>,
    /// File holding the bearer token (else the BONSAI_TOKEN environment variable, else the
    /// file BONSAI_TOKEN_FILE names, else `token_file` in the config file); http(s)
    /// stores only.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM file of a private CA to trust for an `https://` store (else the file
    /// BONSAI_CA_FILE names, else `ca_file` in the config file).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl StoreArgs {
    /// Opens the store for a command that needs `access` to it. The token and CA from the
    /// environment or the config file apply to http(s) stores and are ignored for a
    /// directory; only the flags, given for a directory, are refused.
    pub(crate) fn open(&self, access: Access) -> anyhow::Result<Box<dyn bonsai_core::BlockStore>> {
        if self.store.len() > 1 {
            return Err(crate::exit::Failed::new(
                crate::exit::Exit::Usage,
                format!(
                    "--store is given {} times; only pull, export and `recipe check` read from several stores (nearest first)",
                    self.store.len()
                ),
            )
            .into());
        }
        self.open_one(&self.store[0], access)
    }

    /// The first store alone (push: uploads go to the nearest store, which must then hold
    /// every block it registers).
    pub(crate) fn open_first(
        &self,
        access: Access,
    ) -> anyhow::Result<Box<dyn bonsai_core::BlockStore>> {
        self.open_one(&self.store[0], access)
    }

    /// Every store given, as one: blocks from the first that holds each.
    pub(crate) fn open_tiered(
        &self,
        access: Access,
    ) -> anyhow::Result<Box<dyn bonsai_core::BlockStore>> {
        if self.store.len() == 1 {
            return self.open(access);
        }
        let stores = self
            .store
            .iter()
            .map(|s| self.open_one(s, access))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Box::new(bonsai_core::store::tiered::Tiered::new(stores)))
    }

    /// The stores as the user named them, for messages and `--json`.
    pub(crate) fn shown(&self) -> String {
        let names: Vec<String> = self.store.iter().map(ToString::to_string).collect();
        names.join(", then ")
    }

    fn open_one(
        &self,
        spec: &StoreSpec,
        access: Access,
    ) -> anyhow::Result<Box<dyn bonsai_core::BlockStore>> {
        let http = matches!(spec, StoreSpec::Http(_));
        let token = if http { self.token()? } else { None };
        let env_ca = || std::env::var_os("BONSAI_CA_FILE").filter(|v| !v.is_empty());
        let ca_file = match (&self.ca_file, http) {
            // with several stores the CA is for the https ones among them
            (Some(_), false) if self.store.len() > 1 => None,
            (Some(f), _) => Some(f.clone()),
            (None, true) => env_ca().map(PathBuf::from),
            (None, false) => None,
        };
        let client = crate::store::Client {
            token,
            // with several stores the token is for the http(s) ones among them
            token_file_given: self.token_file.is_some()
                && !self.store.iter().any(|s| matches!(s, StoreSpec::Http(_))),
            ca_file,
        };
        spec.open(access, &client)
    }

    /// The token: from `--token-file`, else `BONSAI_TOKEN`, else the file
    /// `BONSAI_TOKEN_FILE` names.
    pub(crate) fn token(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        let read = |p: &std::path::Path| -> anyhow::Result<String> {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read token file {}", p.display()))?;
            one_token(&t, &format!("token file {}", p.display()))
        };
        if let Some(p) = &self.token_file {
            return read(p).map(Some);
        }
        match std::env::var("BONSAI_TOKEN") {
            Ok(t) if !t.is_empty() => return one_token(&t, "BONSAI_TOKEN").map(Some),
            _ => {}
        }
        match std::env::var_os("BONSAI_TOKEN_FILE") {
            Some(p) if !p.is_empty() => read(std::path::Path::new(&p)).map(Some),
            _ => Ok(None),
        }
    }
}

/// The token a client's token file (or `BONSAI_TOKEN`) holds: the whole text, blanks at
/// both ends removed, one word. A server's token file (`ROLE TOKEN` lines) or an empty one
/// is a usage error naming what is wrong, never a request sent with a mangled header.
fn one_token(text: &str, what: &str) -> anyhow::Result<String> {
    let t = text.trim();
    let usage =
        |m: String| anyhow::Error::from(crate::exit::Failed::new(crate::exit::Exit::Usage, m));
    if t.is_empty() {
        return Err(usage(format!("{what} is empty; it must hold the token")));
    }
    let words: Vec<&str> = t.split_whitespace().collect();
    if words.len() > 1 {
        let server = matches!(words[0], "read" | "write" | "admin");
        return Err(usage(format!(
            "{what} holds {} words on {} line(s); a client's token file holds the token alone{}",
            words.len(),
            t.lines().count(),
            if server {
                " (this looks like a server's token file of `ROLE TOKEN` lines: give the client just the token)"
            } else {
                ""
            }
        )));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err(usage(format!("{what} holds a control character")));
    }
    Ok(t.to_string())
}

/// `--keep-recipe` / `--recipe-key`: a recipe sealed to its owner and kept by the store.
#[derive(Args, Debug, Clone)]
pub(crate) struct RecipeKeyArgs {
    /// Key file sealing recipes kept by the store: an age identity (`bonsai recipe keygen`)
    /// or a passphrase on its first line. The store never sees it.
    #[arg(long, value_name = "FILE")]
    pub recipe_key: Option<PathBuf>,
}

/// Convergence secret and chunking.
#[derive(Args, Debug, Clone)]
pub(crate) struct SecretArgs {
    /// File with a private convergence secret. Dedup then works only among holders of the
    /// same secret, and outsiders cannot confirm guesses about your data. Default: the
    /// public secret (dedup with everyone).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

impl SecretArgs {
    /// The convergence secret to use.
    pub(crate) fn convergence(&self) -> anyhow::Result<Convergence> {
        match &self.secret_file {
            None => Ok(Convergence::public()),
            // docs/FORMAT.md "Convergence secret": the bytes less one final line end
            Some(p) => Ok(Convergence::from_secret_file(p)?),
        }
    }
}

/// Chunker choice.
#[derive(Args, Debug, Clone)]
pub(crate) struct ChunkArgs {
    /// Average chunk size in KiB (FastCDC: min = avg/4, max = avg*4).
    #[arg(long, default_value_t = 64, value_name = "KIB")]
    pub chunk_kib: u32,
    /// Fixed-size chunks of --chunk-kib instead of content-defined ones.
    #[arg(long)]
    pub fixed: bool,
}

impl ChunkArgs {
    /// The chunker parameters, validated.
    pub(crate) fn params(&self) -> anyhow::Result<ChunkerParams> {
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
///
/// The cache maps chunk keys to block ids, which tells whoever reads it which content this
/// user handled: its directory is made 0700 and its files 0600 before and after opening.
pub(crate) fn key_cache(no_cache: bool) -> Option<std::sync::Arc<bonsai_core::cache::KeyCache>> {
    if no_cache {
        return None;
    }
    let path = bonsai_core::cache::KeyCache::default_path();
    if let Some(dir) = path.as_deref().and_then(std::path::Path::parent) {
        private_dir(dir);
    }
    let cache = bonsai_core::cache::KeyCache::open_default().map(std::sync::Arc::new);
    if let Some(path) = &path {
        private_files(path);
    }
    cache
}

/// Creates `dir` (and parents) and makes it 0700; failures are left to the cache's open.
fn private_dir(dir: &std::path::Path) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

/// Makes the cache database and its SQLite side files 0600.
fn private_files(db: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

/// `bonsai push`
#[derive(Args, Debug)]
pub(crate) struct PushArgs {
    /// Disk image (raw, qcow2, vmdk, vhdx, vhd, vdi, qed, parallels, luks) or block device.
    pub image: PathBuf,
    #[command(flatten)]
    pub image_opts: ImageArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to write the recipe [default: ./IMAGE-NAME.recipe].
    #[arg(long, short = 'o', value_name = "RECIPE")]
    pub output: Option<PathBuf>,
    /// Replace an existing recipe at RECIPE.
    #[arg(long)]
    pub force: bool,
    /// Name to register the image under in the store [default: the image's file name]:
    /// `NAMESPACE/…/NAME`, up to 255 bytes, no `@`. Each push adds a new version of the
    /// name (NAME@1, NAME@2, …); nothing is ever replaced.
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
    /// Also keep the recipe in the store, signed and sealed with --recipe-key and bound to
    /// the version this push registers, so that `bonsai pull NAME --recipe-key F` works
    /// on a machine without the recipe file.
    #[arg(long, requires = "recipe_key")]
    pub keep_recipe: bool,
    #[command(flatten)]
    pub recipe_key: RecipeKeyArgs,
}

/// `bonsai pull`
#[derive(Args, Debug)]
pub(crate) struct PullArgs {
    /// Recipe written by `bonsai push` — or, with --recipe-key, an image in the store whose
    /// sealed recipe it keeps: NAME (the newest version) or NAME@VERSION.
    pub recipe: PathBuf,
    #[command(flatten)]
    pub recipe_key: RecipeKeyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to write the image (written beside it under a temporary name, renamed when verified).
    #[arg(long, short = 'o', value_name = "OUT")]
    pub output: PathBuf,
    /// Replace an existing file at OUT (once the new image is verified).
    #[arg(long)]
    pub force: bool,
    /// Format to write [default: from OUT's extension (.qcow2, .vmdk, .vhdx, .vhd), else raw].
    #[arg(long, value_enum)]
    pub output_format: Option<OutputFormat>,
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
    /// Say what the pull would take from where — OUT's partial file (a resume), seeds, the
    /// store — and whether the store holds every block it would fetch; write nothing.
    #[arg(long)]
    pub dry_run: bool,
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

/// `bonsai export`
#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Recipe written by `bonsai push` — or, with --recipe-key, an image in the store whose
    /// sealed recipe it keeps: NAME (the newest version) or NAME@VERSION.
    pub recipe: PathBuf,
    #[command(flatten)]
    pub recipe_key: RecipeKeyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where the image is made local (a temporary name beside it until it is complete and
    /// verified, then renamed).
    #[arg(long, short = 'o', value_name = "LOCAL")]
    pub output: PathBuf,
    /// Unix socket to serve on (`nbd+unix:///?socket=PATH`); a stale socket file is replaced.
    #[arg(long, value_name = "PATH", required_unless_present = "listen")]
    pub socket: Option<PathBuf>,
    /// TCP address to serve on as well (`nbd://ADDR`), e.g. 127.0.0.1:10809.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Write straight into an existing LOCAL (an older copy helps: blocks already in place
    /// are not fetched).
    #[arg(long)]
    pub in_place: bool,
    /// Replace an existing LOCAL once the image is complete and verified.
    #[arg(long)]
    pub force: bool,
    /// Local file whose matching chunks are used instead of downloading (repeatable).
    #[arg(long, value_name = "FILE")]
    pub seed: Vec<PathBuf>,
    /// Neither record the first client's reads as the image's boot profile nor keep one.
    #[arg(long)]
    pub no_profile: bool,
    /// Fetch only what clients read (with read-ahead and the boot profile), not the whole
    /// image: for a short-lived VM or a metered link. LOCAL stays partial; a later export
    /// or `bonsai pull -o LOCAL` finishes it without fetching anything twice.
    #[arg(long)]
    pub no_fill: bool,
    /// Background fetch threads.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub threads: usize,
    /// Print events (serving, profile, store down/back, filled) as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// `bonsai stats`
#[derive(Args, Debug)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bonsai report`
#[derive(Args, Debug)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page with the charts (no network needed to view).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the growth chart alone as an SVG file (for documents).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Most images in the pairwise sharing matrix (the first registered).
    #[arg(long, value_name = "N", default_value_t = bonsai_core::report::DEFAULT_MATRIX_IMAGES)]
    pub matrix: usize,
}

/// `bonsai analyze`
#[derive(Args, Debug)]
pub(crate) struct AnalyzeArgs {
    /// Images, in the order they would be pushed (opened as push opens them; the options
    /// below apply to each).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub image_opts: ImageArgs,
    /// Print JSON (one object with a row per image).
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page with the growth chart.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub chunk: ChunkArgs,
}

/// `bonsai demo`
#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Keep the demo's files in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}
