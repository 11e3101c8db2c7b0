//! A parallels image's block allocation table: where its guest disk may hold data, and
//! that every cluster lies inside the file.
//!
//! Why here: qemu's parallels driver aborts on an assertion when asked to map a disk of
//! 1 TiB or more (qemu 10.0), so neither NBD block status nor `qemu-img map` can map
//! one. The table is simple: a 64-byte header, then one 32-bit entry per cluster, 0 for
//! a cluster that reads as zeros, else its offset in the file — in sectors for the old
//! `WithoutFreeSpace` magic, in clusters for `WithouFreSpacExt` (as qemu reads them).

use super::allocation::AllocationMap;
use super::header::bytes;
use super::ImageError;
use std::fs::File;
use std::path::Path;

/// The largest table read: 16 million clusters (16 TiB of 1 MiB clusters).
const MAX_BAT_BYTES: u64 = 64 << 20;

fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4")) as u64
}

/// Where the guest disk of `file` (`len` bytes, a parallels image) may hold data;
/// `None` for a header qemu would not read the same way. Refuses as truncated a
/// cluster that lies past the end of the file.
pub fn allocation(path: &Path, file: &File, len: u64) -> Result<Option<AllocationMap>, ImageError> {
    let h = bytes(path, file, len, 0, 64, "parallels header")?;
    let (magic, version, cluster, entries) = (&h[..16], le32(&h, 16), le32(&h, 28), le32(&h, 32));
    let multiplier = match magic {
        b"WithoutFreeSpace" => 1,
        b"WithouFreSpacExt" => cluster,
        _ => return Ok(None),
    };
    let sectors = u64::from_le_bytes(h[36..44].try_into().expect("8"));
    let sectors = if multiplier == 1 {
        sectors & 0xffff_ffff
    } else {
        sectors
    };
    if version != 2 || cluster == 0 || entries * 4 > MAX_BAT_BYTES || sectors >= 1 << 54 {
        return Ok(None);
    }
    let bat = bytes(path, file, len, 64, entries * 4, "block allocation table")?;
    let cluster_bytes = cluster * 512;
    let disk = sectors * 512;
    let blocks = entries.min(disk.div_ceil(cluster_bytes));
    let mut failed = None;
    let map = AllocationMap::from_blocks(cluster_bytes, blocks, |i| {
        let entry = le32(&bat, 4 * i as usize);
        let at = entry.saturating_mul(multiplier).saturating_mul(512);
        let need = cluster_bytes.min(disk - i * cluster_bytes);
        if entry != 0 && at.checked_add(need).is_none_or(|end| end > len) && failed.is_none() {
            failed = Some(ImageError::truncated(
                path,
                format!("cluster {i} at byte {at} ({need} bytes) lies past the end of the {len}-byte file"),
            ));
        }
        entry != 0
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(Some(map)),
    }
}
