//! A sealed recipe comes from the store, which we do not trust: opening arbitrary bytes
//! with a key must fail cleanly or yield bytes that were sealed (and signed) for exactly
//! that version. Two layers: arbitrary ciphertext (the age parser), and arbitrary
//! *plaintext* — what an attacker who can encrypt to the owner controls — through the
//! signature and binding checks.
#![no_main]

use bonsai_core::seal::{open, open_plaintext, seal, Binding, RecipeKey};
use bonsai_core::ImageHash;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static RecipeKey {
    static KEY: OnceLock<RecipeKey> = OnceLock::new();
    KEY.get_or_init(|| {
        RecipeKey::parse(&RecipeKey::generate(), std::path::Path::new("fuzz.key")).unwrap()
    })
}

const HASH: ImageHash = ImageHash([7; 32]);

fuzz_target!(|data: &[u8]| {
    let want = Binding {
        name: "vm",
        version: 2,
        image_hash: &HASH,
    };
    let _ = open(&want, data, key());
    // a plaintext nobody signed never opens
    assert!(open_plaintext(&want, data, key()).is_err());
    // and a signed one opens to exactly what was sealed, for exactly that version (for one
    // input in 16: sealing costs a key exchange and a signature, and the parsers above are
    // what the fuzzer should spend its time on)
    if data.len() < 256 && data.first().is_some_and(|b| b & 0x0f == 0) {
        let sealed = seal(&want, data, key()).unwrap();
        assert_eq!(open(&want, &sealed, key()).unwrap(), data);
        let other = Binding { version: 3, ..want };
        assert!(open(&other, &sealed, key()).is_err());
    }
});
