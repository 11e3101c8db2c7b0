//! Any text as an id (what the store parses from URLs and JSON): accepted only in its one
//! canonical spelling, 64 lowercase hex digits, which renders back to the same text.
#![no_main]
use bonsai_core::BlockId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = s.parse::<BlockId>() {
            assert_eq!(id.to_hex(), s);
        }
    }
});
