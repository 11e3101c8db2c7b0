//! Any bytes as a block object, under their own id (so the id check passes and the header,
//! length, tag and decompression paths are exercised), with a key and a recipe length
//! taken from the input: never a panic; the store's header check agrees with the decoder.
#![no_main]
use bonsai_core::recipe::BlockRef;
use bonsai_core::{codec, BlockId, BlockKey, Convergence};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 36 {
        return;
    }
    let (key, rest) = data.split_at(32);
    let (len, object) = rest.split_at(4);
    let id = BlockId(*blake3::hash(object).as_bytes());
    let block = BlockRef {
        id,
        key: BlockKey(key.try_into().unwrap()),
        len: u32::from_le_bytes(len.try_into().unwrap()),
    };
    let conv = Convergence::public();
    let decoded = codec::decode_entry(&conv, &block, object);
    if let Ok(plain) = &decoded {
        assert_eq!(plain.len(), block.len as usize);
        assert_eq!(conv.key_for(plain), block.key);
    }
    if codec::verify_object(&id, object).is_err() {
        assert!(decoded.is_err());
    }
});
