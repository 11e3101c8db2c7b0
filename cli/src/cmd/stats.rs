//! `bonsai stats`

use crate::args::StatsArgs;
use crate::render;

/// Runs the command.
pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let store = bonsai_blockstore::open_store(&args.store.store, args.store.token()?)?;
    let stats = store.stats()?;
    if args.json {
        render::json(&stats)
    } else {
        render::stats(&store.describe(), &stats);
        Ok(())
    }
}
