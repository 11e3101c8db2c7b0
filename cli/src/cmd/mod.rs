//! One file per command: options → one core call → render.

pub mod analyze;
pub mod demo;
pub mod init;
pub mod inspect;
pub mod pull;
pub mod push;
pub mod recipe;
pub mod stats;
