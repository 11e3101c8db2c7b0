//! One file per command: options → one core call → render.

pub mod analyze;
pub mod check;
pub mod completions;
pub mod demo;
pub mod forget;
pub mod gc;
pub mod images;
pub mod init;
pub mod inspect;
pub mod pull;
pub mod push;
pub mod recipe;
pub mod report;
pub mod stats;
