//! `bonsai export`: the recipe's image served over NBD while it is made local.

use crate::args::ExportArgs;
use crate::exit::{Exit, Failed};
use crate::progress::Bar;
use crate::store::Access;
use anyhow::Context;
use bonsai_core::export::{Control, Event, ExportOptions, Listeners, Status};
use bonsai_core::{BlockStore, Recipe};
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;

/// The running export's requests; SIGUSR1 asks it for its figures.
static CONTROL: Control = Control::new();

/// Runs the command until SIGINT or SIGTERM; SIGUSR1 prints the figures of the moment.
pub(crate) fn run(args: ExportArgs, quiet: bool) -> anyhow::Result<()> {
    crate::preflight::pull_output(&args.output, args.force, args.in_place)?;
    crate::preflight::seeds(&args.seed)?;
    anyhow::ensure!(args.threads > 0, "--threads must be at least 1");
    let store = args.store.open_tiered(Access::Existing)?;
    let recipe = match &args.recipe_key.recipe_key {
        None => Recipe::open(&args.recipe)
            .with_context(|| format!("cannot use recipe {}", args.recipe.display()))?,
        Some(key) => super::pull::sealed_recipe(&args.recipe, key, store.as_ref())?,
    };
    let (version, fallbacks) = match args.no_profile {
        true => (None, Vec::new()),
        false => versions_of(&recipe, store.as_ref()),
    };
    let opts = ExportOptions {
        convergence: args.secret.convergence()?,
        seeds: args.seed.clone(),
        network_threads: args.threads,
        in_place: args.in_place,
        force: args.force,
        recipe_path: args.recipe.clone(),
        version,
        profile_fallbacks: fallbacks,
        record_profile: !args.no_profile,
        fill: !args.no_fill,
        export_name: "bonsai".into(),
    };
    let listeners = listen(&args)?;
    let json = args.json;
    let say = move |e: Event| say(&e, json, quiet);
    let bar = Bar::new(quiet || json, Some(recipe.logical_size));
    announce(&args, &recipe, json, quiet);
    status_on_sigusr1();
    let report = bonsai_core::export::export(
        &recipe,
        store.as_ref(),
        &args.output,
        &opts,
        listeners,
        &bar,
        &say,
        &CONTROL,
    )
    .with_context(|| format!("export to {} failed", args.output.display()))?;
    drop(report);
    Ok(())
}

/// SIGUSR1 → one status event (the handler only sets a flag the export polls).
fn status_on_sigusr1() {
    extern "C" fn on_usr1(_: libc::c_int) {
        CONTROL.request_status();
    }
    let handler: extern "C" fn(libc::c_int) = on_usr1;
    // SAFETY: the handler does one atomic store, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGUSR1, handler as libc::sighandler_t) };
}

/// The registered version this recipe is (by image hash), and the image's other versions
/// newest first: the keys of boot profiles. A store that lists no images gives none.
fn versions_of(recipe: &Recipe, store: &dyn BlockStore) -> (Option<String>, Vec<String>) {
    let Ok(images) = store.images() else {
        return (None, Vec::new());
    };
    let hash = recipe.image_hash.to_hex();
    let Some(me) = images
        .iter()
        .filter(|i| i.image_hash.as_deref() == Some(hash.as_str()))
        .max_by_key(|i| i.version)
    else {
        return (None, Vec::new());
    };
    let mut others: Vec<_> = images
        .iter()
        .filter(|i| i.name == me.name && i.version != me.version)
        .collect();
    others.sort_by_key(|i| std::cmp::Reverse(i.version));
    let label = |i: &bonsai_core::store::ImageInfo| i.version_ref().to_string();
    (Some(label(me)), others.into_iter().map(label).collect())
}

/// Binds the listeners before anything is fetched, so a wrong path fails at once.
fn listen(args: &ExportArgs) -> anyhow::Result<Listeners> {
    let mut l = Listeners::default();
    if let Some(path) = &args.socket {
        remove_stale_socket(path)?;
        l.unix = Some(
            UnixListener::bind(path)
                .with_context(|| format!("cannot listen on socket {}", path.display()))?,
        );
    }
    if let Some(addr) = args.listen {
        l.tcp = Some(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?,
        );
    }
    Ok(l)
}

/// A socket file left by an export that was killed is removed; a live one (something
/// answers on it) or any other file is refused.
fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let refuse = |why: &str| -> anyhow::Result<()> {
        Err(Failed::new(Exit::Usage, format!("--socket {}: {why}", path.display())).into())
    };
    if !meta.file_type().is_socket() {
        return refuse("exists and is not a socket; give another path");
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return refuse(
            "another export (or server) is listening on it; stop it or give another path",
        );
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove stale socket {}", path.display()))
}

/// Says where clients connect (stdout, so scripts can wait for the line).
fn announce(args: &ExportArgs, recipe: &Recipe, json: bool, quiet: bool) {
    let mut urls = Vec::new();
    if let Some(p) = &args.socket {
        urls.push(format!("nbd+unix:///bonsai?socket={}", p.display()));
    }
    if let Some(a) = args.listen {
        urls.push(format!("nbd://{a}/bonsai"));
    }
    if json {
        let line =
            serde_json::json!({"event": "listening", "urls": urls, "size": recipe.logical_size});
        println!("{line}");
    } else if !quiet {
        println!(
            "exporting {} ({}) on {}",
            args.recipe.display(),
            bonsai_core::stats::human_bytes(recipe.logical_size),
            urls.join(" and ")
        );
    }
    let _ = std::io::stdout().flush();
}

/// One event: a JSON line on stdout with --json, else a line on stderr.
fn say(e: &Event, json: bool, quiet: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(e) {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
        return;
    }
    let h = bonsai_core::stats::human_bytes;
    let line = match e {
        Event::Serving { local_bytes, to_fetch_bytes } => format!(
            "serving: {} already local, {} to fetch in the background",
            h(*local_bytes),
            h(*to_fetch_bytes)
        ),
        Event::ProfileUsed { version, blocks } => {
            format!("boot profile of {version}: {blocks} blocks fetched first")
        }
        Event::ProfileSaved { version, blocks, kept: true } => {
            format!("kept the first client's {blocks} blocks as the boot profile of {version}")
        }
        Event::ProfileSaved { version, .. } => {
            format!("{version} already has a boot profile; the store keeps the first")
        }
        Event::ProfileSkipped { reason } => format!("note: {reason}"),
        Event::StoreDown { reason } => format!(
            "store unreachable ({reason}); reads of blocks not yet local fail until it returns, retrying"
        ),
        Event::StoreBack => "store reachable again; fill resumed".to_string(),
        Event::Filled(r) => format!(
            "filled: {} is complete and verified ({} fetched in {} blocks, {} from seeds, {} resumed) after {:.1} s; still serving",
            r.output,
            h(r.fetched_bytes),
            r.fetched_blocks,
            h(r.seeded_bytes),
            h(r.resumed_bytes),
            r.fill_seconds
        ),
        Event::FillFailed { reason } => format!("fill incomplete: {reason}"),
        Event::Status(s) => status_line(s),
    };
    let important = matches!(
        e,
        Event::FillFailed { .. } | Event::StoreDown { .. } | Event::Status(_)
    );
    if !quiet || important {
        crate::progress::suspend(|| eprintln!("bonsai: {line}"));
    }
}

/// The answer to SIGUSR1, one line.
fn status_line(s: &Status) -> String {
    let h = bonsai_core::stats::human_bytes;
    let pct = match s.data_bytes {
        0 => 100.0,
        d => s.local_bytes as f64 * 100.0 / d as f64,
    };
    format!(
        "status after {:.1} s: {} of {} local ({pct:.1}%); fetched {} ({} for reads, in {} requests), {} from seeds; {} failed reads; store {}; fill {}",
        s.seconds,
        h(s.local_bytes),
        h(s.data_bytes),
        h(s.fetched_bytes),
        h(s.read_fetched_bytes),
        s.read_requests,
        h(s.seeded_bytes),
        s.failed_reads,
        if s.store_down { "unreachable" } else { "reachable" },
        if s.filling { "running" } else { "off or done" }
    )
}
