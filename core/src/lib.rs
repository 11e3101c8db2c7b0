//! bonsai-core: everything that turns a disk image into encrypted, content-addressed
//! blocks and a recipe, and back.
//!
//! # Brief overview
//! - [`chunk`] cuts an image into content-defined chunks and spots all-zero ones (holes).
//! - [`codec`] turns a chunk into a block object: convergent key, zstd, AES-256-GCM, and
//!   an id that is the BLAKE3 of the object, so the store can verify every upload.
//! - [`recipe`] records how to rebuild the image: a compact, checksummed binary list.
//! - [`store`] is the block store as the engines see it, with the HTTP client.
//! - [`push`] and [`pull`] orchestrate, each a plan of steps in files named for them;
//!   [`batch`] is the one chunk-and-key batching step push, [`seed`] and [`analyze`] share.
//! - [`image`] presents every image as a guest-visible [`image::Disk`]; [`publish`]
//!   makes files appear complete or not at all; [`stats`] holds the reported figures and the
//!   ratio vocabulary; [`report`] the store report and its charts.
//! - [`error`]: one [`Error`] for the engines, classified by [`ErrorKind`] for exit codes.
//!
//! # Example
//! ```
//! use bonsai_core::{codec, Convergence, Encoder};
//! let conv = Convergence::public();
//! let block = Encoder::new().encode(&conv, b"some disk bytes");
//! let back = codec::decode(&conv, &block.id, &block.key, &block.object).unwrap();
//! assert_eq!(back, b"some disk bytes");
//! ```

pub mod analyze;
pub mod batch;
pub mod cache;
pub mod chunk;
pub mod codec;
pub mod error;
pub mod export;
pub mod id;
pub mod image;
pub mod name;
pub mod progress;
pub mod publish;
pub mod pull;
pub mod push;
pub mod recipe;
pub mod report;
pub mod seal;
pub mod seed;
pub mod stats;
pub mod store;
pub mod sync;
#[cfg(test)]
pub(crate) mod test_tools;

pub use chunk::{ChunkerKind, ChunkerParams};
pub use codec::{Convergence, Encoder};
pub use error::{Error, ErrorKind};
pub use id::{BlockId, BlockKey, ImageHash};
pub use progress::{NoProgress, Progress};
pub use publish::{Pending, PublishOptions};
pub use pull::{open_recipe, pull, Convert, PullOptions, PullPlan};
pub use push::{push, BytesDisk, PushOptions, StreamDisk};
pub use recipe::{Recipe, RecipeError};
pub use stats::{PullReport, PushReport};
pub use store::{AdminStore, BlockStore, ReadStore, StoreError, StoreStats, WriteStore};
