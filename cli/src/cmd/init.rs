//! `bonsai init DIR`: the one way a store directory comes into being.

use crate::args::InitArgs;
use crate::render;

/// Runs the command.
pub(crate) fn run(args: InitArgs) -> anyhow::Result<()> {
    let fresh = crate::store::init(&args.dir)?;
    let what = if fresh {
        "initialised an empty bonsai store in"
    } else {
        "already a bonsai store:"
    };
    render::text(|out| writeln!(out, "{what} {}", args.dir.display()))
}
