//! `bonsai-blockstore`: the block store server on its own (same as `bonsai serve`).

use clap::Parser;

/// The bonsai block store: holds every distinct encrypted block once, verifies every
/// upload against its id, and serves blocks to pullers over HTTP.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    serve: bonsai_blockstore::ServeArgs,
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BONSAI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.serve.log_format {
        bonsai_blockstore::LogFormat::Json => logs.json().init(),
        bonsai_blockstore::LogFormat::Text => logs.init(),
    }
    if let Err(e) = bonsai_blockstore::serve_blocking(cli.serve) {
        eprintln!("bonsai-blockstore: {e:#}");
        std::process::exit(bonsai_blockstore::error_kind(&e).exit_code());
    }
}
