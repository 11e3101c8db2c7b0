//! Any bytes fed to the recipe decoder: an error or a recipe that re-encodes to the same
//! bytes; never a panic, never an allocation driven by a length field.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = bonsai_core::Recipe::read_from(data) {
        assert_eq!(r.write_to(Vec::new()).unwrap(), data);
    }
});
