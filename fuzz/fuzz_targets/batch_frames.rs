//! The store's wire parsers over any bytes: batch frames (never a panic, never a frame
//! longer than the limit, always progress) and id lists (accepted only when they re-encode
//! to the same bytes).
#![no_main]
use bonsai_core::store::wire::{ids_body, parse_ids};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, skip, len))) = bonsai_core::store::parse_frame(rest, 1 << 20) {
        assert!(len <= 1 << 20);
        assert!(skip + len > 0 && skip + len <= rest.len());
        rest = &rest[skip + len..];
    }
    if let Some(ids) = parse_ids(data) {
        assert_eq!(ids_body(&ids), data);
    }
});
