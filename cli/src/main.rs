//! `bonsai`: parse, set up logging, dispatch, print a one-line error and exit non-zero.

mod args;
mod cmd;
mod progress;
mod render;

use args::{Cli, Command};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BONSAI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Push(a) => cmd::push::run(a, quiet),
        Command::Pull(a) => cmd::pull::run(a, quiet),
        Command::Serve(a) => bonsai_blockstore::serve_blocking(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::Demo(a) => cmd::demo::run(a, quiet),
        Command::Recipe(c) => cmd::recipe::run(c),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Images(a) => cmd::images::run(a),
        Command::Forget(a) => cmd::forget::run(a),
        Command::Gc(a) => cmd::gc::run(a, quiet),
        Command::Check(a) => cmd::check::run(a, quiet),
    };
    if let Err(e) = result {
        // One line: the context chain joined by ": ".
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("bonsai: error: {msg}");
        std::process::exit(1);
    }
}
