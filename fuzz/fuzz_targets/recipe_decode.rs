//! Any bytes fed to the recipe decoder: an error, or a recipe that re-encodes to the very
//! same bytes (readers as strict as writers: one encoding per recipe) and whose checks
//! hold; never a panic, never an allocation driven by a length field.
#![no_main]
use bonsai_core::recipe::{ImageCheck, Recipe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Recipe::read_from(data) {
        assert_eq!(r.write_to(Vec::new()).unwrap(), data);
        let covered: u64 = r.extents_with_offsets().map(|(_, len, _)| len).sum();
        assert_eq!(covered, r.logical_size);
        if let ImageCheck::Extents(h) = r.image_check() {
            assert_eq!(h, r.extents_hash());
        }
    }
});
