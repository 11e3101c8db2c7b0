//! Logs on stderr: colours only on a terminal, quiet by default, louder with `-v`.
//!
//! Why: logs redirected to a file must not carry ANSI escapes, `NO_COLOR` must be honoured
//! (https://no-color.org), and the transient retries of a store client are noise unless
//! the user asks (`-v`); a command that fails prints one error line, not a dozen warnings.
//! `BONSAI_LOG` (an `EnvFilter` directive such as `debug` or `bonsai_core=trace`) overrides
//! the level chosen from `-v`.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Whether to colour what goes to stderr: a terminal, and `NO_COLOR` unset or empty.
pub(crate) fn stderr_colours() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// The filter for `verbose` (`-v` count). `server` commands log requests at info.
pub(crate) fn filter_directive(verbose: u8, server: bool) -> String {
    match (verbose, server) {
        (0, true) => "info".into(),
        // Retries of the store client are debug detail; the final failure is the error line.
        (0, false) => "warn,bonsai_core::store=error".into(),
        (1, _) => "info".into(),
        (2, _) => "debug".into(),
        _ => "trace".into(),
    }
}

/// Installs the subscriber. Call once, before anything logs. `json`: one JSON object per
/// line (`serve --log-format json`), never coloured.
pub(crate) fn init(verbose: u8, server: bool, json: bool) {
    let filter = EnvFilter::try_from_env("BONSAI_LOG")
        .unwrap_or_else(|_| EnvFilter::new(filter_directive(verbose, server)));
    let logs = tracing_subscriber::fmt()
        .with_writer(|| crate::progress::LogWriter)
        .with_env_filter(filter);
    if json {
        logs.json().with_ansi(false).init();
    } else {
        logs.with_ansi(stderr_colours()).init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_clients_loud_servers() {
        assert!(filter_directive(0, false).contains("store=error"));
        assert_eq!(filter_directive(0, true), "info");
        assert_eq!(filter_directive(2, false), "debug");
        EnvFilter::try_new(filter_directive(0, false)).unwrap();
    }
}
