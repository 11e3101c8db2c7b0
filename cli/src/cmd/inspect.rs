//! `bonsai inspect`

use crate::args::InspectArgs;
use anyhow::Context;
use indicatif::HumanBytes;

/// Runs the command.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let info = bonsai_core::image::inspect_with(&args.image, &args.image_opts.options(args.format))
        .with_context(|| format!("cannot inspect {}", args.image.display()))?;
    if args.json {
        return crate::render::json(&info);
    }
    let guessed = if info.format_guessed {
        " (detected)"
    } else {
        ""
    };
    let size = |v: Option<u64>| match v {
        Some(n) => format!("{} ({n} bytes)", HumanBytes(n)),
        None => "unknown until opened (--image-secret-file)".into(),
    };
    println!("image         {}", info.path);
    println!("format        {}{guessed}", info.format);
    println!("virtual size  {}", size(info.virtual_size));
    println!("data          {}", size(info.allocated_bytes));
    println!("file size     {}", HumanBytes(info.file_bytes));
    println!(
        "encryption    {}",
        info.encryption.as_deref().unwrap_or("none")
    );
    if info.backing_chain.is_empty() {
        println!("backing       none");
    }
    for (i, b) in info.backing_chain.iter().enumerate() {
        println!("backing {i:<5} {b}");
    }
    for f in &info.files {
        println!("reads         {f}");
    }
    for r in &info.unfollowed_references {
        println!(
            "names         {r} (not opened: pass --format {} or --follow-references)",
            info.format
        );
    }
    Ok(())
}
