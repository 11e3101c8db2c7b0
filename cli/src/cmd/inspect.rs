//! `bonsai inspect`

use crate::args::InspectArgs;
use anyhow::Context;
use bonsai_core::image::ImageInfo;
use bonsai_core::stats::human_bytes;
use std::io::Write;

/// Runs the command.
pub(crate) fn run(args: InspectArgs) -> anyhow::Result<()> {
    let info = bonsai_core::image::inspect_with(&args.image, &args.image_opts.options())
        .with_context(|| format!("cannot inspect {}", args.image.display()))?;
    if args.json {
        return crate::render::json(&info);
    }
    crate::render::text(|out| show(out, &info))
}

/// The human description of an image.
fn show(out: &mut dyn Write, info: &ImageInfo) -> std::io::Result<()> {
    let guessed = if info.format_guessed {
        " (detected)"
    } else {
        ""
    };
    let size = |v: Option<u64>| match v {
        Some(n) => format!("{} ({n} bytes)", human_bytes(n)),
        None => "unknown until opened (--image-secret-file)".into(),
    };
    writeln!(out, "image         {}", info.path)?;
    writeln!(out, "format        {}{guessed}", info.format)?;
    writeln!(out, "virtual size  {}", size(info.virtual_size))?;
    writeln!(out, "data          {}", size(info.allocated_bytes))?;
    writeln!(out, "file size     {}", human_bytes(info.file_bytes))?;
    writeln!(
        out,
        "encryption    {}",
        info.encryption.as_deref().unwrap_or("none")
    )?;
    if info.backing_chain.is_empty() {
        writeln!(out, "backing       none")?;
    }
    for (i, b) in info.backing_chain.iter().enumerate() {
        writeln!(out, "backing {i:<5} {b}")?;
    }
    for f in &info.files {
        writeln!(out, "reads         {f}")?;
    }
    for r in &info.unfollowed_references {
        writeln!(
            out,
            "names         {r} (not opened: pass --format {} or --follow-references)",
            info.format
        )?;
    }
    Ok(())
}
