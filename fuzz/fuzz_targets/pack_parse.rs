//! A pack comes from a bucket several servers share: parsing arbitrary bytes as a pack, or
//! as the tail of one of any size, must fail cleanly, and every entry it accepts lies
//! inside the pack, in order, without overlap.
#![no_main]

use bonsai_core::store::pack::{parse, parse_tail, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse(data) {
        let mut at = HEADER_LEN as u64;
        for e in &entries {
            assert_eq!(e.offset, at, "objects back to back");
            at += u64::from(e.len);
        }
        assert!(at <= data.len() as u64);
    }
    if data.len() >= 8 {
        let claimed = u64::from_le_bytes(data[..8].try_into().unwrap());
        let _ = parse_tail(claimed, &data[8..]);
    }
});
