//! A manifest comes from the store's backend (a bucket several servers share, a directory
//! an operator can edit): parsing arbitrary bytes under a key must fail cleanly, and what
//! parses re-encodes to the same bytes (one encoding per version).
#![no_main]

use bonsai_core::store::manifest::{encode, key, parse, parse_legacy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_legacy(data);
    // the key is taken from the header itself when there is one, so parsing gets past it
    let probe = std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.lines().nth(1))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
    let k = probe
        .and_then(|v| Some(key(v["name"].as_str()?, v["version"].as_u64()?)))
        .unwrap_or_else(|| key("vm", 1));
    if let Some((header, ids)) = parse(&k, data) {
        assert_eq!(encode(&header, &ids), data, "one encoding per version");
    }
});
