//! Progress bars on stderr (indicatif), hidden when stderr is not a terminal or with --quiet.
//!
//! Every bar belongs to one process-wide [`MultiProgress`], so that log lines and the final
//! error line can be written *around* the bars ([`suspend`], [`clear`]) instead of through
//! them, which on a terminal left a half-drawn bar glued to each warning.

use bonsai_core::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

/// The bars of this process.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Runs `f` with the bars hidden, then redraws them.
pub(crate) fn suspend<R>(f: impl FnOnce() -> R) -> R {
    multi().suspend(f)
}

/// Removes the bars from the terminal (before the error line).
pub(crate) fn clear() {
    let _ = multi().clear();
}

/// stderr for log lines: each write happens with the bars suspended.
pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write(buf))
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        suspend(|| std::io::stderr().write_all(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A bar for one long operation.
pub(crate) struct Bar {
    bar: ProgressBar,
    hint: Option<u64>,
}

impl Bar {
    /// A bar expecting about `hint` bytes (used when the engine does not know the total).
    pub(crate) fn new(quiet: bool, hint: Option<u64>) -> Self {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            multi().add(ProgressBar::no_length())
        };
        Bar { bar, hint }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        let style = ProgressStyle::with_template(
            "{prefix:>5} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> ");
        self.bar.set_style(style);
        self.bar.set_prefix(phase.to_string());
        if let Some(t) = total.or(self.hint) {
            self.bar.set_length(t);
        }
        self.bar.set_position(0);
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A spinner with elapsed time for work whose size the client cannot know (a gc or check
/// running inside the server): on stderr, hidden off a terminal or when `hidden`.
pub(crate) fn spinner(hidden: bool, msg: &str) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = multi().add(ProgressBar::new_spinner());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"));
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
