//! The batch wire format parser the server runs on every upload: never a panic, never a
//! frame longer than the limit.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, skip, len))) = bonsai_core::store::parse_frame(rest, 1 << 20) {
        assert!(len <= 1 << 20);
        rest = &rest[skip + len..];
    }
});
