//! An image's header and tables come from whoever made the image (anything inside a VM can
//! write a header into its own disk): reading what a header names, checking its tables and
//! mapping it from its own allocation table must fail cleanly on any bytes — never a
//! panic, an overflow, or unbounded memory. The first byte picks the format.
#![no_main]

use bonsai_core::image::{header, parallels, vhdx, vmdk, ImageFormat};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let format = ImageFormat::ALL[pick as usize % ImageFormat::ALL.len()];
    let path = std::env::temp_dir().join(format!("bonsai-fuzz-image-{}", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("a scratch file");
    let file = std::fs::File::open(&path).expect("the scratch file");
    let len = bytes.len() as u64;
    let _ = header::read(&path, &file, len, format);
    let _ = header::check(&path, &file, len, format);
    let _ = match format {
        ImageFormat::Vhdx => vhdx::allocation(&path, &file, len).map(drop),
        ImageFormat::Vmdk => vmdk::allocation(&path, &file, len).map(drop),
        ImageFormat::Parallels => parallels::allocation(&path, &file, len).map(drop),
        _ => Ok(()),
    };
});
