//! Export, what a running export is asked and says about itself: [`Control`] carries the
//! requests (stop; status, which the command line sends on SIGUSR1), [`Status`] the
//! figures of the moment.

use super::blocks::PRESENT;
use super::lazy::LazyImage;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Requests to a running export; a `static` one can be set from a signal handler.
#[derive(Debug, Default)]
pub struct Control {
    stop: AtomicBool,
    status: AtomicBool,
}

impl Control {
    /// No request yet.
    pub const fn new() -> Control {
        Control {
            stop: AtomicBool::new(false),
            status: AtomicBool::new(false),
        }
    }

    /// Ends the export: clients are disconnected, the fill stops, LOCAL keeps what it has.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Asks for one [`super::Event::Status`] (async-signal-safe: one atomic store).
    pub fn request_status(&self) {
        self.status.store(true, Ordering::Release);
    }

    pub(crate) fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    pub(crate) fn take_status_request(&self) -> bool {
        self.status.swap(false, Ordering::AcqRel)
    }
}

/// Plaintext bytes of the image's data (at every use): those in LOCAL, and all.
pub(crate) fn local_and_data(img: &LazyImage<'_>) -> (u64, u64) {
    let (mut local, mut data) = (0u64, 0u64);
    for i in 0..img.blocks.len() as u32 {
        let n = img.recipe.blocks[i as usize].len as u64 * img.uses[i as usize].len() as u64;
        data += n;
        if img.blocks.get(i) == PRESENT {
            local += n;
        }
    }
    (local, data)
}

/// Figures of a running export at one moment.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    /// Seconds since the export started.
    pub seconds: f64,
    /// Plaintext bytes of image data in LOCAL (at every use).
    pub local_bytes: u64,
    /// Plaintext bytes of image data in all (holes excluded).
    pub data_bytes: u64,
    /// Object bytes fetched from the store, for reads and by the fill.
    pub fetched_bytes: u64,
    /// Of those, bytes fetched because a client read them (not read-ahead, not the fill).
    pub read_fetched_bytes: u64,
    /// Plaintext bytes copied from seeds.
    pub seeded_bytes: u64,
    /// Store requests made for clients' reads.
    pub read_requests: u64,
    /// Client reads answered with an error.
    pub failed_reads: u64,
    /// The last store request failed.
    pub store_down: bool,
    /// Whether the background fill runs (`--no-fill` turns it off).
    pub filling: bool,
}

impl Status {
    /// The figures of `img` now.
    pub(crate) fn of(img: &LazyImage<'_>, started: Instant, filling: bool) -> Status {
        let (local, data) = local_and_data(img);
        let c = &img.counters;
        Status {
            seconds: started.elapsed().as_secs_f64(),
            local_bytes: local,
            data_bytes: data,
            fetched_bytes: c.fetched_bytes.load(Ordering::Relaxed),
            read_fetched_bytes: c.read_fetched_bytes.load(Ordering::Relaxed),
            seeded_bytes: c.seeded_bytes.load(Ordering::Relaxed),
            read_requests: c.read_requests.load(Ordering::Relaxed),
            failed_reads: c.failed_reads.load(Ordering::Relaxed),
            store_down: img.store_down.load(Ordering::Relaxed),
            filling,
        }
    }
}
