//! `bonsai forget NAME…`: unregister images (admin token). Their blocks stay until a
//! `bonsai gc` finds them unused by any other image.

use crate::args::StoreArgs;
use crate::exit::{Exit, Failed};
use crate::render;
use crate::store::Access;
use clap::Args;

/// `bonsai forget`
#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Image names, as `bonsai images` lists them.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print `{"forgotten": [NAME…], "unknown": []}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command: every name must be registered, checked before anything is forgotten.
pub fn run(args: ForgetArgs) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let known: std::collections::HashSet<String> =
        store.images()?.into_iter().map(|i| i.name).collect();
    if let Some(unknown) = args.names.iter().find(|n| !known.contains(*n)) {
        return Err(Failed::new(
            Exit::NotFound,
            format!(
                "no image named {unknown:?} in store {} (see `bonsai images`); nothing forgotten",
                store.describe()
            ),
        )
        .into());
    }
    let report = store.forget(&args.names)?;
    if args.json {
        return render::json(&report);
    }
    render::text(|out| {
        for name in &report.forgotten {
            writeln!(out, "forgot {name}")?;
        }
        writeln!(
            out,
            "run `bonsai gc` to free the blocks no other image uses"
        )
    })
}
