//! Any bytes as a block object, under their own id (so the id check passes and the header,
//! tag and decompression paths are exercised): never a panic.
#![no_main]
use bonsai_core::{codec, BlockId, BlockKey, Convergence};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (key, object) = data.split_at(32);
    let id = BlockId(*blake3::hash(object).as_bytes());
    let key = BlockKey(key.try_into().unwrap());
    let _ = codec::decode(&Convergence::public(), &id, &key, object);
});
