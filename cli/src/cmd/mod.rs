//! One file per command: options → one core call → render.

pub(crate) mod analyze;
pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod demo;
pub(crate) mod export;
pub(crate) mod forget;
pub(crate) mod gc;
pub(crate) mod images;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod recipe;
pub(crate) mod report;
pub(crate) mod stats;
pub(crate) mod sync;
