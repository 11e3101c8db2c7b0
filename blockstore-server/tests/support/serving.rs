//! A store server process for tests, written once: spawned from a prepared command, ready
//! when it prints `listening on URL` on stdout (its readiness signal — the socket is bound
//! before the line is written, so no test sleeps or polls), killed and reaped on drop.
//! Used by the store's own integration tests and by the end-to-end tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running server and the URL it printed.
pub(crate) struct Serving {
    /// The process (stdout already read up to the readiness line).
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub(crate) url: String,
}

impl Serving {
    /// Spawns `cmd` with stdout piped and waits for its readiness line; panics with what it
    /// printed instead.
    pub(crate) fn spawn(mut cmd: Command) -> Serving {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the store server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not start: {line:?}");
        };
        Serving {
            url: url.to_string(),
            child,
        }
    }

    /// `host:port` of the URL.
    #[allow(dead_code)]
    pub(crate) fn addr(&self) -> &str {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.kill();
    }
}
