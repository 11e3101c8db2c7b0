//! `bonsai stats`

use crate::args::StatsArgs;
use crate::render;
use crate::store::Access;

/// Runs the command.
pub(crate) fn run(args: StatsArgs) -> anyhow::Result<()> {
    let store = args.store.open(Access::Existing)?;
    let stats = store.stats()?;
    if args.json {
        render::json(&stats)
    } else {
        render::text(|out| render::stats(out, &store.describe(), &stats))
    }
}
