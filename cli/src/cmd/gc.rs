//! `bonsai gc`: delete blocks no registered image uses (admin token), safe while others
//! push: mark now, delete on a later run once the grace period has passed with the block
//! still unreferenced and unconfirmed (docs/OPERATING.md).

use crate::args::StoreArgs;
use crate::render;
use crate::store::Access;
use bonsai_core::stats::human_bytes;
use bonsai_core::store::{GcOptions, GcReport, DEFAULT_GRACE};
use clap::Args;
use std::io::Write;

/// `bonsai gc`
#[derive(Args, Debug)]
pub(crate) struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print what would be freed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long a block must stay unreferenced after being marked before it is deleted:
    /// `30s`, `15m`, `2h`, `1d`. `0` frees unreferenced blocks at once — only when you know
    /// no push is running (a push caught out is refused at registration and must re-run).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1d")]
    pub grace: u64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Seconds of `N[s|m|h|d]`.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 15m, 2h or 1d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Runs the command.
pub(crate) fn run(args: GcArgs, quiet: bool) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let opts = GcOptions {
        grace: std::time::Duration::from_secs(args.grace),
        dry_run: args.dry_run,
    };
    let bar = crate::progress::spinner(quiet || args.json, "collecting garbage");
    let report = store.gc(&opts);
    bar.finish_and_clear();
    let r = report?;
    if args.json {
        return crate::render::json(&r);
    }
    let store_name = store.describe();
    render::text(|out| summary(out, &store_name, &r))
}

/// The human summary of a gc run.
fn summary(out: &mut dyn Write, store: &str, r: &GcReport) -> std::io::Result<()> {
    let verb = if r.dry_run { "would free" } else { "freed" };
    writeln!(
        out,
        "gc of {store}: {verb} {} blocks ({}) in {:.1}s",
        r.blocks_freed,
        human_bytes(r.bytes_freed),
        r.wall_seconds
    )?;
    writeln!(
        out,
        "  unreferenced {}, newly marked {}, kept {} (grace {}{})",
        r.unreferenced_blocks,
        r.marked_blocks,
        r.blocks_in_grace,
        human_duration(r.grace_seconds),
        if r.grace_seconds == DEFAULT_GRACE.as_secs() {
            ", the default"
        } else {
            ""
        }
    )?;
    if r.blocks_in_grace > 0 && !r.dry_run {
        writeln!(
            out,
            "  kept blocks are deleted by a gc run after the grace period, if still unused"
        )?;
    }
    Ok(())
}

/// `1d`, `2h`, `15m` or `90s`: the largest unit that divides the duration.
fn human_duration(secs: u64) -> String {
    match secs {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        use super::parse_duration as p;
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("90s"), Ok(90));
        assert_eq!(p("15m"), Ok(900));
        assert_eq!(p("1d"), Ok(86_400));
        assert!(p("1w").is_err());
        assert!(p("soon").is_err());
        assert_eq!(super::human_duration(86_400), "1d");
        assert_eq!(super::human_duration(90), "90s");
    }
}
