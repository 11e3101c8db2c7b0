//! `bonsai check`: every indexed block exists with its size (`--read-data`: hashes to its
//! id). Damaged blocks are quarantined and dropped so the next push re-uploads them.
//! Exit code: the verification-failure code when damage was found.

use crate::args::StoreArgs;
use crate::store::Access;
use clap::Args;
use indicatif::HumanBytes;

/// `bonsai check`
#[derive(Args, Debug)]
pub struct CheckArgs {
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
pub fn run(args: CheckArgs, quiet: bool) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let bar = crate::cmd::gc::spinner(quiet || args.json, "checking blocks");
    let report = store.check(&bonsai_core::store::CheckOptions {
        read_data: args.read_data,
    });
    bar.finish_and_clear();
    let r = report?;
    if args.json {
        crate::render::json(&r)?;
    } else {
        let rate = if r.wall_seconds > 0.0 {
            format!(
                ", {}/s",
                HumanBytes((r.read_bytes as f64 / r.wall_seconds) as u64)
            )
        } else {
            String::new()
        };
        println!(
            "check of {}: {} blocks{} in {:.1}s{rate}",
            store.describe(),
            r.blocks_checked,
            if r.read_data {
                format!(", {} read and hashed", HumanBytes(r.read_bytes))
            } else {
                String::new()
            },
            r.wall_seconds
        );
        for d in &r.problems {
            println!("  damaged block {} ({}): quarantined", d.id, d.problem);
        }
        for i in &r.images_missing_blocks {
            println!(
                "  image {} lacks {} block(s): push it (or any image holding them) again",
                i.name, i.missing_blocks
            );
        }
    }
    anyhow::ensure!(
        r.damaged.is_empty() && r.damaged_images.is_empty(),
        "check of {} found {} damaged block(s) and {} image(s) lacking blocks; re-push those images",
        store.describe(),
        r.damaged.len(),
        r.damaged_images.len()
    );
    Ok(())
}
