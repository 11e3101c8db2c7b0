//! `bonsai inspect`

use crate::args::InspectArgs;
use anyhow::Context;
use bonsai_core::image::ImageInfo;
use indicatif::HumanBytes;
use std::io::Write;

/// Runs the command.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let info = bonsai_core::image::inspect(&args.image, args.format)
        .with_context(|| format!("cannot inspect {}", args.image.display()))?;
    if args.json {
        return crate::render::json(&info);
    }
    crate::render::text(|out| show(out, &info))
}

/// The human description of an image.
fn show(out: &mut dyn Write, info: &ImageInfo) -> std::io::Result<()> {
    writeln!(out, "image         {}", info.path)?;
    writeln!(out, "format        {:?}", info.format)?;
    writeln!(
        out,
        "virtual size  {} ({} bytes)",
        HumanBytes(info.virtual_size),
        info.virtual_size
    )?;
    writeln!(
        out,
        "allocated     {} in this file",
        HumanBytes(info.allocated_bytes)
    )?;
    writeln!(out, "file size     {}", HumanBytes(info.file_bytes))?;
    if info.backing_chain.is_empty() {
        writeln!(out, "backing       none")?;
    }
    for (i, b) in info.backing_chain.iter().enumerate() {
        writeln!(out, "backing {i:<5} {b}")?;
    }
    Ok(())
}
