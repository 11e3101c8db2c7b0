//! `bonsai sync --from STORE --to STORE [NAME[@VERSION]…|--all]`: copy image versions from
//! one store to another, sending only the blocks the target lacks. Resumable (a re-run
//! sends the rest) and idempotent (a version already there is left as it is); a version
//! is registered at the target only once every one of its blocks is there, under the
//! same number, with its sealed recipe and boot profile.

use crate::args::StoreArgs;
use crate::exit::{Exit, Failed};
use crate::progress::Bar;
use crate::render;
use crate::store::{Access, StoreSpec};
use bonsai_core::name::{for_terminal, VersionRef};
use bonsai_core::stats::human_bytes;
use bonsai_core::store::ImageInfo;
use bonsai_core::sync::{copy_version, SyncOptions, VersionCopy};
use clap::Args;
use std::path::PathBuf;

/// `bonsai sync`
#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    /// `NAME` (every version) or `NAME@VERSION`; none with --all.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Copy every version the source lists.
    #[arg(long)]
    pub all: bool,
    /// The store to copy from: `http(s)://host:port` or a store directory (read token).
    #[arg(long, value_name = "STORE", value_parser = crate::store::parse_store)]
    pub from: StoreSpec,
    /// Token file for --from (else BONSAI_TOKEN / BONSAI_TOKEN_FILE, as for --store).
    #[arg(long, value_name = "FILE")]
    pub from_token_file: Option<PathBuf>,
    /// The store to copy to: `http(s)://host:port` or an existing store directory (write
    /// token).
    #[arg(long, value_name = "STORE", value_parser = crate::store::parse_store)]
    pub to: StoreSpec,
    /// Token file for --to (else BONSAI_TOKEN / BONSAI_TOKEN_FILE, as for --store).
    #[arg(long, value_name = "FILE")]
    pub to_token_file: Option<PathBuf>,
    /// PEM file of a private CA to trust for either https:// store.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Most bytes sent per second, averaged: 500k, 10M, 1G (powers of 1024, as curl's
    /// --limit-rate).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Print `{"from", "to", "versions": [{version, existed, blocks, sent_blocks,
    /// sent_bytes, sealed_recipe, profile}], "sent_blocks", "sent_bytes"}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command: the versions meant are all checked before anything is copied.
pub(crate) fn run(args: SyncArgs) -> anyhow::Result<()> {
    let side = |store: &StoreSpec, token_file: &Option<PathBuf>| StoreArgs {
        store: vec![store.clone()],
        token_file: token_file.clone(),
        // one --ca-file for both ends: given to whichever is https
        ca_file: args
            .ca_file
            .clone()
            .filter(|_| matches!(store, StoreSpec::Http(_))),
    };
    let from = side(&args.from, &args.from_token_file).open(Access::Existing)?;
    let to = side(&args.to, &args.to_token_file).open(Access::Existing)?;
    if from.describe() == to.describe() {
        return Err(Failed::new(Exit::Usage, "--from and --to name the same store").into());
    }
    let listed = from.images()?;
    let chosen = chosen(&args, &listed, &from.describe())?;
    let opts = SyncOptions {
        limit_rate: args.limit_rate,
        ..SyncOptions::default()
    };
    let bar = Bar::new(args.quiet || args.json, None);
    let mut copies = Vec::new();
    for info in &chosen {
        copies.push(copy_version(&*from, &*to, info, &opts, &bar)?);
    }
    if args.json {
        return render::json(&serde_json::json!({
            "from": from.describe(),
            "to": to.describe(),
            "versions": copies,
            "sent_blocks": copies.iter().map(|c| c.sent_blocks).sum::<u64>(),
            "sent_bytes": copies.iter().map(|c| c.sent_bytes).sum::<u64>(),
        }));
    }
    render::text(|out| summary(out, &from.describe(), &to.describe(), &copies))
}

/// The versions the arguments mean, in the source's order; every argument must match.
fn chosen(args: &SyncArgs, listed: &[ImageInfo], store: &str) -> anyhow::Result<Vec<ImageInfo>> {
    if args.all {
        return Ok(listed.to_vec());
    }
    let mut refs = Vec::new();
    for text in &args.names {
        let r = VersionRef::parse(text).map_err(|e| Failed::new(Exit::Usage, e))?;
        let hit = |i: &ImageInfo| i.name == r.name && r.version.is_none_or(|v| v == i.version);
        if !listed.iter().any(hit) {
            return Err(Failed::new(
                Exit::NotFound,
                format!(
                    "no image named {} in store {store} (see `bonsai images`); nothing copied",
                    for_terminal(text)
                ),
            )
            .into());
        }
        refs.push(r);
    }
    Ok(listed
        .iter()
        .filter(|i| {
            refs.iter()
                .any(|r| i.name == r.name && r.version.is_none_or(|v| v == i.version))
        })
        .cloned()
        .collect())
}

/// One line per version, then the total.
fn summary(
    out: &mut dyn std::io::Write,
    from: &str,
    to: &str,
    copies: &[VersionCopy],
) -> std::io::Result<()> {
    writeln!(out, "sync {from} -> {to}")?;
    for c in copies {
        let what = if c.existed { "already there" } else { "copied" };
        writeln!(
            out,
            "  {:<40} {what:<13} {} of {} blocks sent ({}){}{}",
            for_terminal(&c.version),
            c.sent_blocks,
            c.blocks,
            human_bytes(c.sent_bytes),
            if c.sealed_recipe {
                ", sealed recipe"
            } else {
                ""
            },
            if c.profile { ", boot profile" } else { "" },
        )?;
    }
    let sent: u64 = copies.iter().map(|c| c.sent_bytes).sum();
    writeln!(
        out,
        "{} version(s), {} sent",
        copies.len(),
        human_bytes(sent)
    )
}

/// `--limit-rate`: a number of bytes per second with an optional k, M or G (1024-based)
/// and an optional `B`/`iB` and `/s`.
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, unit) = match t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        _ => {
            return Err(format!(
                "{text:?}: a rate is a number with k, M or G (10M, 500k)"
            ))
        }
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: a rate is a number with k, M or G (10M, 500k)"))?;
    let bytes = n * (1u64 << shift) as f64;
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!(
            "{text:?}: a rate must be at least 1 byte per second"
        ));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_read_like_curls() {
        assert_eq!(parse_rate("500"), Ok(500));
        assert_eq!(parse_rate("500k"), Ok(500 << 10));
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("10MiB/s"), Ok(10 << 20));
        assert_eq!(parse_rate("1.5G"), Ok(3 << 29));
        for bad in ["", "fast", "10X", "0", "-5M", "1e3"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
