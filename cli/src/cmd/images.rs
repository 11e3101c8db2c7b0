//! `bonsai images`: registered images with their figures (read token).

use crate::args::StoreArgs;
use crate::render;
use crate::store::Access;
use bonsai_core::stats::human_bytes;
use bonsai_core::store::ImageInfo;
use clap::Args;
use std::io::Write;

/// `bonsai images`
#[derive(Args, Debug)]
pub(crate) struct ImagesArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON: `{"store": …, "images": [{name, version, image_hash, by, logical_bytes,
    /// blocks, unique_bytes, registered, sealed_recipe}]}`, one entry per version.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub(crate) fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let images = store.images()?;
    if args.json {
        return render::json(&serde_json::json!({
            "store": store.describe(),
            "images": images,
        }));
    }
    let name = store.describe();
    render::text(|out| table(out, &name, &images))
}

/// One line per version, sizes human, names escaped for the terminal.
fn table(out: &mut dyn Write, store: &str, images: &[ImageInfo]) -> std::io::Result<()> {
    let names: std::collections::BTreeSet<&str> = images.iter().map(|i| i.name.as_str()).collect();
    writeln!(
        out,
        "store {store}: {} image(s), {} version(s)",
        names.len(),
        images.len()
    )?;
    writeln!(
        out,
        "{:<32} {:>4} {:>11} {:>9} {:>16}  {:<20} {:<16} sealed",
        "name", "ver", "logical", "blocks", "stored only here", "registered (UTC)", "by"
    )?;
    for i in images {
        writeln!(
            out,
            "{:<32} {:>4} {:>11} {:>9} {:>16}  {:<20} {:<16} {}",
            bonsai_core::name::for_terminal(&i.name),
            i.version,
            human_bytes(i.logical_bytes),
            i.blocks,
            human_bytes(i.unique_bytes),
            utc(i.registered),
            bonsai_core::name::for_terminal(&i.by),
            if i.sealed_recipe { "yes" } else { "-" }
        )?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time (civil-from-days, no time-zone database needed).
pub(crate) fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_000_000), "2026-11-18 11:06:40");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
    }
}
