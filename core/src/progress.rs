//! Progress reporting: the library reports, the binary draws (or stays quiet).

/// Receives progress from long operations. Implementations must be cheap: `advance` is
/// called per batch from worker threads.
pub trait Progress: Send + Sync {
    /// A phase begins; `total` bytes are expected if known.
    fn start(&self, phase: &str, total: Option<u64>);
    /// `bytes` more of the current phase are done.
    fn advance(&self, bytes: u64);
    /// The current phase ended.
    fn finish(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
