//! Helpers shared by the store's integration tests.

#[allow(dead_code)] // not every test binary starts a server process
pub(crate) mod serving;
pub(crate) mod weed; // allows dead code itself: not every test binary starts SeaweedFS
