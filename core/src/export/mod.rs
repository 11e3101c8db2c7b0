//! Export: the image a recipe describes, served as an NBD export while it is made local,
//! so a VM boots before the last byte lands.
//!
//! ```text
//! nbd.rs      the NBD protocol, server side (negotiation, structured replies, block status)
//! lazy.rs     LazyImage: reads answered from LOCAL, missing blocks fetched (verified) first
//! blocks.rs   the block table: absent / fetching / present / bad; one fetch per block
//! fill.rs     the background fill: hinted blocks first, then image order; store retries
//! profile.rs  boot profiles: the first client's reads, kept in the store, prefetched
//! status.rs   Control (stop, status requests) and the Status figures
//! ```
//!
//! LOCAL is written exactly as pull writes OUT: a partial file beside it
//! (`.LOCAL.HASH16.bonsai-partial`, or LOCAL itself with `in_place`), probed for blocks
//! already there on start (a restarted export fetches nothing twice, and `bonsai pull -o
//! LOCAL` resumes from it), and when every block is in, verified by pull's own read-back
//! pass and published by rename. The export keeps serving from the same file afterwards.
//! The export is read-only: writes go to a qcow2 overlay (README "Boot while it arrives").

mod blocks;
mod fill;
mod lazy;
pub mod nbd;
pub mod profile;
mod status;

pub use status::{Control, Status};

use crate::codec::Convergence;
use crate::error::Error;
use crate::id::BlockId;
use crate::progress::Progress;
use crate::pull::{plan, PullOptions, Target};
use crate::recipe::Recipe;
use crate::store::BlockStore;
use lazy::LazyImage;
use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Convergence secret the image was pushed with.
    pub convergence: Convergence,
    /// Local files to take matching blocks from.
    pub seeds: Vec<PathBuf>,
    /// Fetch threads of the background fill.
    pub network_threads: usize,
    /// Write LOCAL itself (which may hold an older copy) instead of a partial file.
    pub in_place: bool,
    /// Replace an existing LOCAL when the fill publishes it.
    pub force: bool,
    /// The recipe file, for messages.
    pub recipe_path: PathBuf,
    /// The version (`NAME@V`) the recipe is registered as: its boot profile is used and
    /// recorded. `None`: no profile.
    pub version: Option<String>,
    /// Other versions of the image, newest first, whose profiles stand in when `version`
    /// has none (they share most blocks).
    pub profile_fallbacks: Vec<String>,
    /// Record the first client's reads and keep them as `version`'s boot profile.
    pub record_profile: bool,
    /// Fetch the whole image in the background (false: only what clients read, their
    /// read-ahead and the boot profile; LOCAL then stays partial, for a later export or
    /// pull to finish).
    pub fill: bool,
    /// The NBD export name served (clients may also ask for the default, "").
    pub export_name: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            convergence: Convergence::public(),
            seeds: Vec::new(),
            network_threads: 4,
            in_place: false,
            force: false,
            recipe_path: PathBuf::from("recipe"),
            version: None,
            profile_fallbacks: Vec::new(),
            record_profile: true,
            fill: true,
            export_name: "bonsai".into(),
        }
    }
}

/// Where clients connect (at least one).
#[derive(Debug, Default)]
pub struct Listeners {
    /// A unix socket (`nbd+unix:///?socket=PATH`).
    pub unix: Option<UnixListener>,
    /// A TCP address (`nbd://HOST:PORT`).
    pub tcp: Option<TcpListener>,
}

/// What happened, as it happens (the command line prints these, `--json` as lines).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Clients may connect.
    Serving {
        /// Bytes of blocks LOCAL already held (resumed) or seeds will give.
        local_bytes: u64,
        /// Bytes of blocks still to come from the store or seeds.
        to_fetch_bytes: u64,
    },
    /// A boot profile orders the first fetches.
    ProfileUsed {
        /// The version whose profile it is.
        version: String,
        /// Its blocks this image uses and LOCAL lacked.
        blocks: usize,
    },
    /// The first client's reads were kept as the version's boot profile.
    ProfileSaved {
        /// The version.
        version: String,
        /// Blocks listed.
        blocks: usize,
        /// False when the store already kept one (the first stays).
        kept: bool,
    },
    /// A boot profile could not be read or kept (prefetching only; nothing is wrong).
    ProfileSkipped {
        /// Why.
        reason: String,
    },
    /// The store stopped answering: reads of blocks not here fail (EIO) until it returns.
    StoreDown {
        /// The last failure.
        reason: String,
    },
    /// The store answers again.
    StoreBack,
    /// The figures of the moment, when asked ([`Control::request_status`]).
    Status(Status),
    /// Every block is in LOCAL, verified as a pull verifies, and LOCAL is published.
    Filled(ExportReport),
    /// The fill ended without a complete image (blocks failed verification, or the final
    /// check failed); the export keeps serving the rest.
    FillFailed {
        /// Why.
        reason: String,
    },
}

/// Figures of an export.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExportReport {
    /// LOCAL.
    pub output: String,
    /// Size of the image.
    pub logical_bytes: u64,
    /// Distinct blocks of the image.
    pub blocks: u64,
    /// Blocks found already in LOCAL at start (a restarted export fetches none of them).
    pub resumed_blocks: u64,
    /// Plaintext bytes found already in LOCAL at start.
    pub resumed_bytes: u64,
    /// Plaintext bytes copied from seeds.
    pub seeded_bytes: u64,
    /// Blocks and object bytes fetched from the store.
    pub fetched_blocks: u64,
    /// Object bytes fetched.
    pub fetched_bytes: u64,
    /// Store requests made on behalf of a client's read.
    pub read_requests: u64,
    /// Client reads answered with an error.
    pub failed_reads: u64,
    /// LOCAL holds the verified image and is published.
    pub verified: bool,
    /// Seconds from start until the fill was verified (0 if it was not).
    pub fill_seconds: f64,
}

/// Serves `recipe` on `listeners` until `control` says stop, filling `out` meanwhile;
/// events go to `events` as they happen. Returns the figures when stopped.
#[allow(clippy::too_many_arguments)]
pub fn export(
    recipe: &Recipe,
    store: &dyn BlockStore,
    out: &Path,
    opts: &ExportOptions,
    listeners: Listeners,
    progress: &dyn Progress,
    events: &(dyn Fn(Event) + Sync),
    control: &Control,
) -> Result<ExportReport, Error> {
    let started = Instant::now();
    let pull_opts = PullOptions {
        convergence: opts.convergence.clone(),
        in_place: opts.in_place,
        force: opts.force,
        recipe_path: opts.recipe_path.clone(),
        ..Default::default()
    };
    crate::pull::check_recipe(recipe, &pull_opts)?;
    let target = Target::open(out, recipe, &pull_opts)?;
    target.clear_holes(recipe, true)?;
    let (img, resumed) = open_lazy(recipe, store, &target, opts, progress)?;
    let (local, data) = status::local_and_data(&img);
    let to_fetch = data - local;
    events(Event::Serving {
        local_bytes: resumed,
        to_fetch_bytes: to_fetch,
    });
    progress.start("export", Some(to_fetch));
    prefetch_profile(&img, store, opts, events);
    let mut report = ExportReport {
        output: out.display().to_string(),
        logical_bytes: recipe.logical_size,
        blocks: recipe.blocks.len() as u64,
        resumed_blocks: img.blocks.counts().0 as u64,
        resumed_bytes: resumed,
        ..Default::default()
    };
    let run = Run {
        img: &img,
        stop: control.stop_flag(),
        control,
        started,
        events,
        conns: Mutex::new(Vec::new()),
        fill_left: AtomicUsize::new(opts.network_threads.max(1)),
    };
    let cursor = fill::Cursor::new();
    let mut target = Some(target);
    std::thread::scope(|s| {
        for l in [
            listeners.unix.map(Listener::Unix),
            listeners.tcp.map(Listener::Tcp),
        ]
        .into_iter()
        .flatten()
        {
            let run = &run;
            s.spawn(move || run.accept(s, l, &opts.export_name));
        }
        for k in 0..opts.network_threads.max(1) {
            let (run, cursor) = (&run, &cursor);
            s.spawn(move || {
                fill::worker(run.img, cursor, k, opts.fill, run.stop);
                run.fill_left.fetch_sub(1, Ordering::AcqRel);
            });
        }
        run.watch(store, opts, &mut target, &mut report, started, &pull_opts);
        run.close_connections();
    });
    progress.finish();
    let c = &img.counters;
    report.seeded_bytes = c.seeded_bytes.load(Ordering::Relaxed);
    report.fetched_blocks = c.fetched_blocks.load(Ordering::Relaxed);
    report.fetched_bytes = c.fetched_bytes.load(Ordering::Relaxed);
    report.read_requests = c.read_requests.load(Ordering::Relaxed);
    report.failed_reads = c.failed_reads.load(Ordering::Relaxed);
    Ok(report)
}

/// Probes LOCAL and the seeds and builds the lazy image; returns it and the bytes found.
fn open_lazy<'a>(
    recipe: &'a Recipe,
    store: &'a dyn BlockStore,
    target: &Target,
    opts: &'a ExportOptions,
    progress: &'a dyn Progress,
) -> Result<(LazyImage<'a>, u64), Error> {
    use crate::error::IoContext;
    let conv = &opts.convergence;
    let uses = plan::uses_of(recipe);
    let in_target = match target.may_hold_data() {
        true => crate::pull::resume::blocks_in_target(recipe, conv, target.file(), &uses),
        false => Vec::new(),
    };
    // a block found at its first use may be missing at its other uses (an export stopped
    // midway): copy it there before it counts as present
    let mut buf = Vec::new();
    for &i in &in_target {
        let b = &recipe.blocks[i as usize];
        buf.resize(b.len as usize, 0);
        let u = &uses[i as usize];
        if u.len() > 1 {
            use std::os::unix::fs::FileExt;
            target
                .file()
                .read_exact_at(&mut buf, u[0])
                .at(target.path())?;
            for &o in &u[1..] {
                target.file().write_all_at(&buf, o).at(target.path())?;
            }
        }
    }
    let resumed: u64 = in_target
        .iter()
        .map(|&i| recipe.blocks[i as usize].len as u64)
        .sum();
    let blocks = blocks::Blocks::new(recipe.blocks.len(), in_target.iter().copied());
    let seed_hits = if opts.seeds.is_empty() {
        HashMap::new()
    } else {
        let wanted: HashMap<_, u32> = (0..recipe.blocks.len() as u32)
            .filter(|&i| blocks.get(i) == blocks::ABSENT)
            .map(|i| (recipe.blocks[i as usize].key, i))
            .collect();
        crate::seed::find_in_seeds(recipe, conv, &opts.seeds, &wanted)?
    };
    let seeds = opts
        .seeds
        .iter()
        .map(|p| std::fs::File::open(p).at(p))
        .collect::<Result<_, _>>()?;
    let mut starts = Vec::with_capacity(recipe.extents.len());
    starts.extend(recipe.extents_with_offsets().map(|(o, _, _)| o));
    let img = LazyImage {
        recipe,
        conv,
        store,
        file: target.file().try_clone().at(target.path())?,
        path: target.path().to_path_buf(),
        uses,
        starts,
        seeds,
        seed_hits,
        blocks,
        sequential: Mutex::new((u64::MAX, 0)),
        read_fetched_at: AtomicU64::new(0),
        born: Instant::now(),
        hints: Mutex::new(VecDeque::new()),
        counters: Default::default(),
        recorder: profile::Recorder::new(opts.record_profile && opts.version.is_some()),
        progress,
        store_down: AtomicBool::new(false),
        last_store_error: Mutex::new(None),
    };
    Ok((img, resumed))
}

/// Puts the blocks of the first boot profile found (this version's, else another's)
/// first in the fill's queue.
fn prefetch_profile(
    img: &LazyImage<'_>,
    store: &dyn BlockStore,
    opts: &ExportOptions,
    events: &(dyn Fn(Event) + Sync),
) {
    let index: HashMap<BlockId, u32> = img
        .recipe
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (b.id, i as u32))
        .collect();
    for version in opts.version.iter().chain(&opts.profile_fallbacks) {
        let ids = match store.get_profile(version) {
            Ok(Some(bytes)) => match profile::decode(&bytes) {
                Ok(ids) => ids,
                Err(e) => {
                    let reason = format!("boot profile of {version}: {e}");
                    events(Event::ProfileSkipped { reason });
                    continue;
                }
            },
            Ok(None) => continue,
            Err(e) => {
                let reason = format!("boot profile of {version}: {e}");
                events(Event::ProfileSkipped { reason });
                return;
            }
        };
        let wanted: Vec<u32> = ids
            .iter()
            .filter_map(|id| index.get(id).copied())
            .filter(|&i| img.blocks.get(i) == blocks::ABSENT)
            .collect();
        let blocks = wanted.len();
        img.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(wanted);
        events(Event::ProfileUsed {
            version: version.clone(),
            blocks,
        });
        return;
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// What the threads of a running export share.
struct Run<'a> {
    img: &'a LazyImage<'a>,
    stop: &'a AtomicBool,
    control: &'a Control,
    started: Instant,
    events: &'a (dyn Fn(Event) + Sync),
    /// Open client connections, to shut down on stop.
    conns: Mutex<Vec<nbd::Stream>>,
    /// Fill threads still running.
    fill_left: AtomicUsize,
}

impl<'a> Run<'a> {
    /// Accepts clients until stop; each is served on its own thread.
    fn accept<'s>(&'s self, s: &'s std::thread::Scope<'s, '_>, l: Listener, name: &'s str)
    where
        'a: 's,
    {
        let ok = match &l {
            Listener::Unix(u) => u.set_nonblocking(true),
            Listener::Tcp(t) => t.set_nonblocking(true),
        };
        if let Err(e) = ok {
            tracing::error!(error = %e, "export: cannot poll the listener");
            return;
        }
        while !self.stop.load(Ordering::Relaxed) {
            let conn = match &l {
                Listener::Unix(u) => u.accept().map(|(c, _)| {
                    let _ = c.set_nonblocking(false);
                    nbd::Stream::Unix(c)
                }),
                Listener::Tcp(t) => t.accept().map(|(c, _)| {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_nodelay(true);
                    nbd::Stream::Tcp(c)
                }),
            };
            match conn {
                Ok(c) => {
                    if let Ok(copy) = c.try_clone() {
                        self.conns
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(copy);
                    }
                    s.spawn(move || {
                        if let Err(e) = nbd::serve_connection(c, self.img, name) {
                            tracing::info!(error = %e, "export: client connection ended");
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "export: accept failed");
                    std::thread::sleep(Duration::from_millis(100))
                }
            }
        }
    }

    fn close_connections(&self) {
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            c.shutdown();
        }
    }

    /// The export's own loop until stop: store up/down events, the boot profile when the
    /// first client leaves, and the final verification once the fill is done.
    fn watch(
        &self,
        store: &dyn BlockStore,
        opts: &ExportOptions,
        target: &mut Option<Target>,
        report: &mut ExportReport,
        started: Instant,
        pull_opts: &PullOptions,
    ) {
        let mut down = false;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let now_down = self.img.store_down.load(Ordering::Relaxed);
            if now_down != down {
                down = now_down;
                (self.events)(match down {
                    true => Event::StoreDown {
                        reason: self.last_error(),
                    },
                    false => Event::StoreBack,
                });
            }
            if self.control.take_status_request() {
                let filling = opts.fill && self.fill_left.load(Ordering::Acquire) > 0;
                (self.events)(Event::Status(Status::of(self.img, self.started, filling)));
            }
            if let Some(order) = self.img.recorder.take_finished() {
                self.save_profile(store, opts, &order);
            }
            if target.is_some() && self.fill_left.load(Ordering::Acquire) == 0 {
                let t = target.take().expect("checked");
                self.conclude(t, report, started, pull_opts);
            }
        }
    }

    fn last_error(&self) -> String {
        let e = self.img.last_store_error.lock();
        e.unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }

    fn save_profile(&self, store: &dyn BlockStore, opts: &ExportOptions, order: &[u32]) {
        let Some(version) = &opts.version else {
            return;
        };
        if order.is_empty() {
            return;
        }
        let ids: Vec<BlockId> = order
            .iter()
            .map(|&i| self.img.recipe.blocks[i as usize].id)
            .collect();
        let event = match store.put_profile(version, &profile::encode(&ids)) {
            Ok(kept) => Event::ProfileSaved {
                version: version.clone(),
                blocks: ids.len(),
                kept,
            },
            Err(e) => Event::ProfileSkipped {
                reason: format!("could not keep the boot profile of {version}: {e}"),
            },
        };
        (self.events)(event);
    }

    /// The fill is over: verify LOCAL as a pull does and publish it, or say why not.
    fn conclude(
        &self,
        target: Target,
        report: &mut ExportReport,
        started: Instant,
        pull_opts: &PullOptions,
    ) {
        let (_, bad, _) = self.img.blocks.counts();
        if bad > 0 {
            (self.events)(Event::FillFailed {
                reason: format!(
                    "{bad} block(s) from the store failed verification; reads of them fail, the rest is served; {} is kept unpublished",
                    target.path().display()
                ),
            });
            return;
        }
        let verified = crate::pull::verify_target(self.img.recipe, &target, &pull_opts.convergence)
            .and_then(|()| target.finish(pull_opts.force, None));
        match verified {
            Ok(()) => {
                report.verified = true;
                report.fill_seconds = started.elapsed().as_secs_f64();
                let mut r = report.clone();
                let c = &self.img.counters;
                r.seeded_bytes = c.seeded_bytes.load(Ordering::Relaxed);
                r.fetched_blocks = c.fetched_blocks.load(Ordering::Relaxed);
                r.fetched_bytes = c.fetched_bytes.load(Ordering::Relaxed);
                r.read_requests = c.read_requests.load(Ordering::Relaxed);
                r.failed_reads = c.failed_reads.load(Ordering::Relaxed);
                (self.events)(Event::Filled(r));
            }
            Err(e) => (self.events)(Event::FillFailed {
                reason: e.to_string(),
            }),
        }
    }
}
