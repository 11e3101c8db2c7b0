//! `bonsai inspect`

use crate::args::InspectArgs;
use anyhow::Context;
use indicatif::HumanBytes;

/// Runs the command.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let info = bonsai_core::image::inspect(&args.image, args.format)
        .with_context(|| format!("cannot inspect {}", args.image.display()))?;
    if args.json {
        return crate::render::json(&info);
    }
    println!("image         {}", info.path);
    println!("format        {:?}", info.format);
    println!(
        "virtual size  {} ({} bytes)",
        HumanBytes(info.virtual_size),
        info.virtual_size
    );
    println!(
        "allocated     {} in this file",
        HumanBytes(info.allocated_bytes)
    );
    println!("file size     {}", HumanBytes(info.file_bytes));
    if info.backing_chain.is_empty() {
        println!("backing       none");
    }
    for (i, b) in info.backing_chain.iter().enumerate() {
        println!("backing {i:<5} {b}");
    }
    Ok(())
}
