//! Progress bars on stderr (indicatif), hidden when stderr is not a terminal or with --quiet.

use bonsai_core::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar for one long operation.
pub struct Bar {
    bar: ProgressBar,
    hint: Option<u64>,
}

impl Bar {
    /// A bar expecting about `hint` bytes (used when the engine does not know the total).
    pub fn new(quiet: bool, hint: Option<u64>) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if quiet || !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
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
