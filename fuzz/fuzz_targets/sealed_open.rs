//! A sealed recipe comes from the store, which we do not trust: opening arbitrary bytes
//! with a key must fail cleanly or yield bytes that were sealed for that name.
#![no_main]

use bonsai_core::seal::{open, RecipeKey};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static RecipeKey {
    static KEY: OnceLock<RecipeKey> = OnceLock::new();
    KEY.get_or_init(|| {
        RecipeKey::parse(&RecipeKey::generate(), std::path::Path::new("fuzz.key")).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = open("vm", data, key());
});
