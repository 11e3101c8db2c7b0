//! A vhdx's tables against the length of its file: the log, the regions (BAT, metadata)
//! and every payload and sector-bitmap block the BAT says is present must lie inside it.
//!
//! Why here: qemu refuses most such vhdx files itself, but for some cuts only with "invalid
//! argument", which says nothing about what is wrong. Only the fields these checks need are
//! read (MS-VHDX sections 2.2-2.5).

use super::header::bytes;
use super::ImageError;
use std::fs::File;
use std::path::Path;

const MIB: u64 = 1 << 20;
/// Region GUIDs as stored (mixed-endian).
const BAT: [u8; 16] = guid(0x2DC2_7766, 0xF623, 0x4200, 0x9D64_115E_9BFD_4A08);
const METADATA: [u8; 16] = guid(0x8B7C_A206, 0x4790, 0x4B9A, 0xB8FE_575F_050F_886E);
/// Metadata items: file parameters (block size) and the logical sector size.
const FILE_PARAMETERS: [u8; 16] = guid(0xCAA1_6737, 0xFA36, 0x4D43, 0xB3B6_33F0_AA44_E76B);
const LOGICAL_SECTOR: [u8; 16] = guid(0x8141_BF1D, 0xA96F, 0x4709, 0xBA47_F233_A8FA_AB5F);
/// The largest BAT read (qemu's own limit on a BAT is far above any real image's).
const MAX_BAT_BYTES: u64 = 256 << 20;

const fn guid(a: u32, b: u16, c: u16, d: u64) -> [u8; 16] {
    let (a, b, c, d) = (
        a.to_le_bytes(),
        b.to_le_bytes(),
        c.to_le_bytes(),
        d.to_be_bytes(),
    );
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4")) as u64
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8"))
}

fn past_end(path: &Path, what: String, len: u64) -> ImageError {
    ImageError::truncated(
        path,
        format!("{what} lies past the end of the {len}-byte file"),
    )
}

/// Checks `file` (`len` bytes, a vhdx) as the module says.
pub fn check(path: &Path, file: &File, len: u64) -> Result<(), ImageError> {
    match tables(path, file, len)? {
        Some(t) => check_bat(path, file, len, &t).map(drop),
        None => Ok(()),
    }
}

/// Where the guest disk of `file` (`len` bytes, a vhdx) may hold data, from its BAT:
/// every payload block not in a state qemu reads as zeros (not present, undefined, zero,
/// unmapped). `None` for a vhdx qemu refuses anyway (a parent, no BAT).
pub fn allocation(
    path: &Path,
    file: &File,
    len: u64,
) -> Result<Option<super::allocation::AllocationMap>, ImageError> {
    let Some(t) = tables(path, file, len)? else {
        return Ok(None);
    };
    if t.has_parent {
        return Ok(None);
    }
    let Some(entries) = check_bat(path, file, len, &t)? else {
        return Ok(None);
    };
    let ratio = chunk_ratio(&t);
    let state = |k: u64| u64_at(&entries, 8 * (k + k / ratio) as usize) & 7;
    let count = entries.len() as u64 / 8;
    let blocks = count - count / (ratio + 1);
    let map = super::allocation::AllocationMap::from_blocks(t.block, blocks, |k| {
        !matches!(state(k), 0 | 1 | 2 | 3 | 5)
    });
    Ok(Some(map))
}

/// What the checks and the map need from a vhdx's headers.
struct Tables {
    /// The BAT region: offset and length.
    bat: (u64, u64),
    /// Payload block size and logical sector size.
    block: u64,
    sector: u64,
    has_parent: bool,
}

/// The current header's log inside the file, the region table's regions inside it, and
/// the BAT and metadata they name; `None` when either region is missing (qemu refuses).
fn tables(path: &Path, file: &File, len: u64) -> Result<Option<Tables>, ImageError> {
    // the current header is the valid one with the higher sequence number; both must be
    // inside the file anyway
    let h1 = bytes(path, file, len, 64 << 10, 80, "vhdx header 1")?;
    let h2 = bytes(path, file, len, 128 << 10, 80, "vhdx header 2")?;
    let h = if u64_at(&h2, 8) > u64_at(&h1, 8) && &h2[..4] == b"head" {
        h2
    } else {
        h1
    };
    let (log_len, log_off) = (u32_at(&h, 68), u64_at(&h, 72));
    bytes(path, file, len, log_off, log_len, "log")?;
    let rt = bytes(path, file, len, 192 << 10, 64 << 10, "region table")?;
    let (mut bat, mut meta) = (None, None);
    for i in 0..u32_at(&rt, 8).min(2047) as usize {
        let e = &rt[16 + 32 * i..48 + 32 * i];
        let (off, n) = (u64_at(e, 16), u32_at(e, 24));
        if off.checked_add(n).is_none_or(|end| end > len) {
            return Err(past_end(
                path,
                format!("region {i} at byte {off} ({n} bytes)"),
                len,
            ));
        }
        if e[..16] == BAT {
            bat = Some((off, n));
        } else if e[..16] == METADATA {
            meta = Some((off, n));
        }
    }
    let (Some(bat), Some(meta)) = (bat, meta) else {
        return Ok(None);
    };
    let (block, sector, has_parent) = parameters(path, file, len, meta)?;
    Ok(Some(Tables {
        bat,
        block,
        sector,
        has_parent,
    }))
}

fn chunk_ratio(t: &Tables) -> u64 {
    ((1u64 << 23) * t.sector / t.block).max(1)
}

/// The block size, the logical sector size and whether the disk has a parent, from the
/// metadata region at `meta`.
fn parameters(
    path: &Path,
    file: &File,
    len: u64,
    (off, n): (u64, u64),
) -> Result<(u64, u64, bool), ImageError> {
    let m = bytes(path, file, len, off, n.min(64 << 10), "metadata table")?;
    let (mut block, mut sector, mut has_parent) = (0, 512, false);
    if m.len() < 64 {
        return Ok((block, sector, has_parent)); // no entries: qemu refuses the image
    }
    for i in 0..(u16::from_le_bytes([m[10], m[11]]) as u64)
        .min(2047)
        .min(m.len() as u64 / 32 - 1) as usize
    {
        let e = &m[32 + 32 * i..64 + 32 * i];
        let item = off + u32_at(e, 16);
        if e[..16] == FILE_PARAMETERS {
            let p = bytes(path, file, len, item, 8, "file parameters")?;
            block = u32_at(&p, 0);
            has_parent = u32_at(&p, 4) & 2 != 0;
        } else if e[..16] == LOGICAL_SECTOR {
            sector = u32_at(&bytes(path, file, len, item, 4, "logical sector size")?, 0);
        }
    }
    Ok((block, sector, has_parent))
}

/// Every present payload block (`block` bytes) and sector bitmap block (1 MiB) inside
/// the file; the BAT's bytes, or `None` for a block size qemu refuses.
fn check_bat(
    path: &Path,
    file: &File,
    len: u64,
    t: &Tables,
) -> Result<Option<Vec<u8>>, ImageError> {
    let ((off, n), block) = (t.bat, t.block);
    if !(MIB..=256 * MIB).contains(&block) || n > MAX_BAT_BYTES {
        return Ok(None); // not a block size qemu accepts: qemu refuses the image
    }
    let chunk_ratio = chunk_ratio(t);
    let entries = bytes(path, file, len, off, n, "bat")?;
    for (i, e) in entries.chunks_exact(8).enumerate() {
        let e = u64_at(e, 0);
        let bitmap = (i as u64 + 1).is_multiple_of(chunk_ratio + 1);
        let present = match e & 7 {
            6 => true,
            7 => !bitmap,
            _ => false,
        };
        let start = (e >> 20) * MIB;
        let size = if bitmap { MIB } else { block };
        if present && start.checked_add(size).is_none_or(|end| end > len) {
            let what = if bitmap {
                "sector bitmap"
            } else {
                "payload block"
            };
            let at = format!("bat entry {i}: {what} at byte {start} ({size} bytes)");
            return Err(past_end(path, at, len));
        }
    }
    Ok(Some(entries))
}
