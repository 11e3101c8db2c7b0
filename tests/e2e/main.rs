//! End-to-end tests: the real `bonsai` binary against a real block store (`bonsai serve`)
//! on loopback, or an embedded store directory. One test binary; helpers in `util`.

mod analyze;
mod cache;
mod conveniences;
mod export;
mod failures;
mod formats;
mod integrity;
mod interrupt;
mod metrics;
mod mistakes;
mod ops;
mod preflight;
mod push_pull;
mod reader;
mod report;
mod s3;
#[path = "../../blockstore-server/tests/support/serving.rs"]
mod serving;
mod sync;
#[path = "../../core/src/test_tools.rs"]
mod tools;
mod truncated;
mod util;
mod verify;
#[path = "../../blockstore-server/tests/support/weed.rs"]
mod weed;
