//! `bonsai forget NAME@V… | NAME… --keep-last N --keep-within D | NAME… --all-versions`:
//! unregister image versions (admin token). Their blocks stay until a `bonsai gc` finds
//! them unused by any other version. Versions are chosen here from the store's list and
//! forgotten by number, so a version pushed meanwhile is never touched.

use crate::args::StoreArgs;
use crate::exit::{Exit, Failed};
use crate::render;
use crate::store::Access;
use bonsai_core::name::{for_terminal, VersionRef};
use bonsai_core::store::retention::{to_forget, Retention};
use bonsai_core::store::ImageInfo;
use clap::Args;

/// `bonsai forget`
#[derive(Args, Debug)]
pub(crate) struct ForgetArgs {
    /// `NAME@VERSION` (one version), or `NAME` with a policy below or --all-versions.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Of each NAME, keep the newest N versions and forget the rest.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u64>,
    /// Of each NAME, keep the versions pushed within this long (30s, 15m, 2h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = crate::cmd::gc::parse_duration)]
    pub keep_within: Option<u64>,
    /// Forget every version of each NAME.
    #[arg(long, conflicts_with_all = ["keep_last", "keep_within"])]
    pub all_versions: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print `{"forgotten": [NAME@V…], "unknown": []}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command: every target must be registered, checked before anything is
/// forgotten.
pub(crate) fn run(args: ForgetArgs) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let listed = store.images()?;
    let policy = Retention {
        keep_last: args.keep_last,
        keep_within: args.keep_within.map(std::time::Duration::from_secs),
    };
    let mut targets = Vec::new();
    for text in &args.names {
        let r = VersionRef::parse(text).map_err(|e| Failed::new(Exit::Usage, e))?;
        targets.extend(versions_meant(
            &r,
            &listed,
            &policy,
            args.all_versions,
            &store.describe(),
        )?);
    }
    let report = if targets.is_empty() {
        Default::default()
    } else {
        let refs: Vec<String> = targets.iter().map(ToString::to_string).collect();
        store.forget(&refs)?
    };
    if args.json {
        return render::json(&report);
    }
    render::text(|out| {
        for name in &report.forgotten {
            writeln!(out, "forgot {}", for_terminal(name))?;
        }
        if report.forgotten.is_empty() {
            return writeln!(out, "the policy keeps every version; nothing forgotten");
        }
        writeln!(
            out,
            "run `bonsai gc` to free the blocks no other version uses"
        )
    })
}

/// The exact versions one argument means, or why it means nothing.
fn versions_meant(
    r: &VersionRef,
    listed: &[ImageInfo],
    policy: &Retention,
    all: bool,
    store: &str,
) -> anyhow::Result<Vec<VersionRef>> {
    let known = listed
        .iter()
        .any(|i| i.name == r.name && r.version.is_none_or(|v| v == i.version));
    if !known {
        return Err(Failed::new(
            Exit::NotFound,
            format!(
                "no image named {} in store {store} (see `bonsai images`); nothing forgotten",
                for_terminal(&r.to_string())
            ),
        )
        .into());
    }
    match (r.version, policy.is_set(), all) {
        (Some(_), false, _) => Ok(vec![r.clone()]),
        (Some(_), true, _) => Err(Failed::new(
            Exit::Usage,
            "--keep-last and --keep-within apply to NAME, not NAME@VERSION",
        )
        .into()),
        (None, true, _) => Ok(to_forget(listed, &r.name, policy, now())),
        (None, false, true) => Ok(listed
            .iter()
            .filter(|i| i.name == r.name)
            .map(ImageInfo::version_ref)
            .collect()),
        (None, false, false) => Err(Failed::new(
            Exit::Usage,
            format!(
                "{} has versions; name one (NAME@VERSION), or give --keep-last N, --keep-within DURATION or --all-versions",
                for_terminal(&r.name)
            ),
        )
        .into()),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
