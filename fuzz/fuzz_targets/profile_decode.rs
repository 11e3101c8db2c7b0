//! Boot profiles come from the store: any bytes must decode or be refused, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = bonsai_core::export::profile::decode(data) {
        assert_eq!(bonsai_core::export::profile::encode(&ids), data, "readers as strict as writers");
    }
});
