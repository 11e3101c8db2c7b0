//! `bonsai`: parse, set up logging, dispatch, print one error line and exit with the code
//! of the failure's class (see `exit` and README "Exit status").

mod args;
mod cmd;
mod config;
mod exit;
mod logging;
mod preflight;
mod progress;
mod render;
mod store;

use args::{Cli, Command};
use clap::Parser;
use exit::Exit;
use std::io::Write;

fn main() {
    if let Err(e) = config::apply() {
        let _ = writeln!(std::io::stderr(), "bonsai: error: {}", e.reason);
        std::process::exit(e.exit as i32);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    let json_logs = matches!(&cli.command, Command::Serve(a) if a.log_format == bonsai_blockstore::LogFormat::Json);
    logging::init(
        cli.verbose,
        matches!(cli.command, Command::Serve(_)),
        json_logs,
    );
    let quiet = cli.quiet;
    if !matches!(cli.command, Command::Serve(_)) {
        // one line on Ctrl-C saying what is left (the server shuts down on its own terms)
        bonsai_core::image::on_signal::install();
    }
    let result = match cli.command {
        Command::Push(a) => cmd::push::run(a, quiet),
        Command::Pull(a) => cmd::pull::run(a, quiet),
        Command::Export(a) => cmd::export::run(a, quiet),
        Command::Serve(a) => bonsai_blockstore::serve_blocking(a),
        Command::Init(a) => cmd::init::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Analyze(a) => cmd::analyze::run(a, quiet),
        Command::Demo(a) => cmd::demo::run(a, quiet),
        Command::Recipe(c) => cmd::recipe::run(c),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Images(a) => cmd::images::run(a),
        Command::Forget(a) => cmd::forget::run(a),
        Command::Sync(a) => cmd::sync::run(a),
        Command::Gc(a) => cmd::gc::run(a, quiet),
        Command::Check(a) => cmd::check::run(a, quiet),
        Command::Completions(a) => cmd::completions::completions(a),
        Command::Man(a) => cmd::completions::man(a),
    };
    if let Err(e) = result {
        if exit::is_broken_pipe(&e) {
            // The reader of stdout went away (`| head`): not a failure of ours.
            std::process::exit(Exit::Ok as i32);
        }
        progress::clear();
        let _ = writeln!(std::io::stderr(), "bonsai: error: {}", one_line(&e));
        std::process::exit(exit::classify(&e) as i32);
    }
}

/// `--help` and `--version` print as clap renders them (exit 0); any other parse error
/// becomes one line with the usage exit code.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind as K;
    if matches!(
        e.kind(),
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let code = if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand {
            Exit::Usage
        } else {
            Exit::Ok
        };
        let _ = e.print();
        std::process::exit(code as i32);
    }
    let text = e.render().to_string();
    let _ = writeln!(
        std::io::stderr(),
        "bonsai: usage: {} (see --help)",
        clap_one_line(&text)
    );
    std::process::exit(Exit::Usage as i32);
}

/// clap's message without its "Usage:" block and hints, joined on one line.
fn clap_one_line(text: &str) -> String {
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    parts.join(" ")
}

/// The error and its causes joined by ": ", each cause shown once: a cause whose text
/// the message already holds (an OS error a wrapper printed too) is skipped.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if text.is_empty() || msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_cause_already_shown_is_not_repeated() {
        let os = std::io::Error::from_raw_os_error(2);
        let core = bonsai_core::Error::Io {
            path: "/x/img".into(),
            source: os,
        };
        let e = Err::<(), _>(core)
            .context("cannot read image /x/img")
            .unwrap_err();
        let line = one_line(&e);
        assert_eq!(line.matches("os error 2").count(), 1, "{line}");
        assert!(
            line.starts_with("cannot read image /x/img: /x/img: "),
            "{line}"
        );
    }

    #[test]
    fn long_help_of_push_pull_serve_has_examples() {
        for cmd in ["push", "pull", "serve"] {
            let e = Cli::try_parse_from(["bonsai", cmd, "--help"]).unwrap_err();
            let help = e.render().to_string();
            assert!(help.contains("Examples:"), "{cmd}: {help}");
            assert!(help.contains(&format!("bonsai {cmd} ")), "{cmd}: {help}");
        }
    }

    #[test]
    fn clap_errors_fit_one_line() {
        let e = Cli::try_parse_from(["bonsai", "push"]).unwrap_err();
        let line = clap_one_line(&e.render().to_string());
        assert!(line.contains("--store"), "{line}");
        assert!(!line.contains('\n'));
    }
}
