//! `bonsai check`: every indexed block exists with its size (`--read-data`: hashes to its
//! id). Damaged blocks are quarantined and dropped so the next push re-uploads them.
//! Exit code: the verification-failure code when damage was found.

use crate::args::StoreArgs;
use crate::exit::{Exit, Failed};
use crate::render;
use crate::store::Access;
use bonsai_core::stats::human_bytes;
use bonsai_core::store::CheckReport;
use clap::Args;
use std::io::Write;

/// `bonsai check`
#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Read every block and check it hashes to its id (reads the whole store).
    #[arg(long)]
    pub read_data: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command; damage found is an error after the report is printed.
pub(crate) fn run(args: CheckArgs, quiet: bool) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let bar = crate::progress::spinner(quiet || args.json, "checking blocks");
    let report = store.check(&bonsai_core::store::CheckOptions {
        read_data: args.read_data,
    });
    bar.finish_and_clear();
    let r = report?;
    if args.json {
        render::json(&r)?;
    } else {
        let name = store.describe();
        render::text(|out| summary(out, &name, &r))?;
    }
    if r.damaged.is_empty() && r.damaged_images.is_empty() {
        return Ok(());
    }
    Err(Failed::new(
        Exit::Verify,
        format!(
            "check of {} found {} damaged block(s) and {} image(s) lacking blocks; re-push those images",
            store.describe(),
            r.damaged.len(),
            r.damaged_images.len()
        ),
    )
    .into())
}

/// The human summary of a check: figures, then each damaged block and image.
fn summary(out: &mut dyn Write, store: &str, r: &CheckReport) -> std::io::Result<()> {
    let rate = if r.wall_seconds > 0.0 && r.read_data {
        format!(
            ", {}/s",
            human_bytes((r.read_bytes as f64 / r.wall_seconds) as u64)
        )
    } else {
        String::new()
    };
    let read = if r.read_data {
        format!(", {} read and hashed", human_bytes(r.read_bytes))
    } else {
        String::new()
    };
    writeln!(
        out,
        "check of {store}: {} blocks{read} in {:.1}s{rate}",
        r.blocks_checked, r.wall_seconds
    )?;
    for d in &r.problems {
        writeln!(out, "  damaged block {} ({}): quarantined", d.id, d.problem)?;
    }
    for i in &r.images_missing_blocks {
        writeln!(
            out,
            "  image {} lacks {} block(s): push it (or any image holding them) again",
            bonsai_core::name::for_terminal(&i.name),
            i.missing_blocks
        )?;
    }
    Ok(())
}
