//! `bonsai forget NAME…`: unregister images (admin token). Their blocks stay until a
//! `bonsai gc` finds them unused by any other image.

use crate::args::StoreArgs;
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
}

/// Runs the command: every name must be registered, checked before anything is forgotten.
pub fn run(args: ForgetArgs) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let known: std::collections::HashSet<String> =
        store.images()?.into_iter().map(|i| i.name).collect();
    if let Some(unknown) = args.names.iter().find(|n| !known.contains(*n)) {
        anyhow::bail!(
            "no image named {unknown:?} in store {} (see `bonsai images`); nothing forgotten",
            store.describe()
        );
    }
    let report = store.forget(&args.names)?;
    for name in &report.forgotten {
        println!("forgot {name}");
    }
    println!("run `bonsai gc` to free the blocks no other image uses");
    Ok(())
}
