//! A sparse vmdk's grain directory and grain tables (monolithicSparse, streamOptimized):
//! where its guest disk may hold data, and that every grain lies inside the file.
//!
//! Only what qemu's vmdk driver reads is read: the header (or, for a stream-optimized
//! file, the footer's copy of it), the grain directory at `gdOffset` and the tables it
//! names. A grain table entry 0 — or 1 where the header enables zeroed grains — reads as
//! zeros; anything else is data. Anything unusual declines the map (`None`), and qemu's
//! own block status maps the disk. (VMware's "Virtual Disk Format 1.1", section
//! "Hosted Sparse Extents".)

use super::allocation::AllocationMap;
use super::header::bytes;
use super::ImageError;
use std::fs::File;
use std::path::Path;

/// Header flags: zeroed-grain entries, markers before compressed grains.
const ZERO_GRAIN: u32 = 1 << 2;
const MARKERS: u32 = 1 << 17;
/// `compressAlgorithm` of deflate-compressed grains (what qemu reads as compressed).
const DEFLATE: u16 = 1;
/// `gdOffset` of a stream-optimized file: the grain directory is found from the footer.
const GD_AT_END: u64 = u64::MAX;
/// The largest grain directory read (qemu's limit on its L1 table is 512 MiB).
const MAX_GD_BYTES: u64 = 64 << 20;
/// The most grain table entries looked at (a 4 TiB disk of 64 KiB grains); past them the
/// disk is mapped by qemu. Tables may repeat, so the file's size does not bound this.
const MAX_GRAINS: u64 = 1 << 26;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8"))
}

/// The fields of a sparse extent header the map needs.
struct Sparse {
    flags: u32,
    /// Grains are deflate-compressed.
    compressed: bool,
    /// Guest sectors.
    capacity: u64,
    /// Sectors per grain, and grain table entries per table.
    grain: u64,
    gtes: u64,
    /// Sector of the grain directory.
    gd: u64,
}

/// The header of `file`, from the footer when the grain directory is at the end; `None`
/// for a header qemu would not read the same way.
fn header(path: &Path, file: &File, len: u64) -> Result<Option<Sparse>, ImageError> {
    if len < 512 || bytes(path, file, len, 0, 4, "vmdk header")? != b"KDMV" {
        return Ok(None); // a descriptor file: its extents are separate files
    }
    let mut h = bytes(path, file, len, 0, 512, "vmdk header")?;
    if le64(&h, 12) == 0 {
        return Ok(None); // qemu serves the embedded descriptor's extents instead
    }
    if le64(&h, 56) == GD_AT_END {
        if !len.is_multiple_of(512) || len < 1536 + 512 {
            return Ok(None);
        }
        let f = bytes(path, file, len, len - 1536, 1536, "vmdk footer")?;
        // footer marker (type 3), the header copy, the end-of-stream marker (type 0)
        let marker_ok = le32(&f, 8) == 0 && le32(&f, 12) == 3;
        let eos_ok = le64(&f, 1024) == 0 && le32(&f, 1032) == 0 && le32(&f, 1036) == 0;
        if !marker_ok || !eos_ok || &f[512..516] != b"KDMV" {
            return Ok(None);
        }
        h = f[512..1024].to_vec();
    }
    let s = Sparse {
        flags: le32(&h, 8),
        compressed: u16::from_le_bytes([h[77], h[78]]) == DEFLATE,
        capacity: le64(&h, 12),
        grain: le64(&h, 20),
        gtes: le32(&h, 44) as u64,
        gd: le64(&h, 56),
    };
    let version = le32(&h, 4);
    let usual = (1..=3).contains(&version)
        && s.capacity > 0
        && s.grain.is_power_of_two()
        && s.grain <= 1 << 16
        && (1..=512).contains(&s.gtes)
        && s.capacity < 1 << 54
        && s.gd < 1 << 54;
    Ok(usual.then_some(s))
}

/// Where the guest disk of `file` (`len` bytes, a vmdk) may hold data. Refuses as
/// truncated a grain directory, grain table or grain that lies past the end of the file.
pub fn allocation(path: &Path, file: &File, len: u64) -> Result<Option<AllocationMap>, ImageError> {
    let Some(s) = header(path, file, len)? else {
        return Ok(None);
    };
    let grain_bytes = s.grain * 512;
    let per_table = s.gtes * s.grain; // sectors
    let tables = s.capacity.div_ceil(per_table);
    if tables.saturating_mul(4) > MAX_GD_BYTES {
        return Ok(None);
    }
    let gd = bytes(path, file, len, s.gd * 512, tables * 4, "grain directory")?;
    let mut entries = Grains::new(path, file, len, &s);
    let mut map = AllocationMap::new();
    let disk = s.capacity * 512;
    'tables: for t in 0..tables {
        let table = le32(&gd, 4 * t as usize) as u64;
        let first = t * s.gtes;
        if table == 0 {
            let end = ((first + s.gtes) * grain_bytes).min(disk);
            if !map.add(first * grain_bytes, end, false) {
                break;
            }
            continue;
        }
        if entries.looked >= MAX_GRAINS {
            break;
        }
        for g in first..(first + s.gtes).min(s.capacity.div_ceil(s.grain)) {
            let data = entries.entry(table, g)?;
            let end = ((g + 1) * grain_bytes).min(disk);
            if !map.add(g * grain_bytes, end, data) {
                break 'tables;
            }
        }
    }
    entries.check_last_compressed()?;
    Ok(Some(map))
}

/// Grain table entries, one table cached, each data grain checked against the file.
struct Grains<'a> {
    path: &'a Path,
    file: &'a File,
    len: u64,
    s: &'a Sparse,
    /// The table in `cache` (its sector), and its entries.
    cached: u64,
    cache: Vec<u8>,
    /// The compressed grain stored last in the file (its sector), to check its end.
    last: u64,
    /// Entries looked at so far.
    looked: u64,
}

impl<'a> Grains<'a> {
    fn new(path: &'a Path, file: &'a File, len: u64, s: &'a Sparse) -> Grains<'a> {
        Grains {
            path,
            file,
            len,
            s,
            cached: 0,
            cache: Vec::new(),
            last: 0,
            looked: 0,
        }
    }

    /// Whether guest grain `g`, in the table at sector `table`, may hold data.
    fn entry(&mut self, table: u64, g: u64) -> Result<bool, ImageError> {
        if self.cached != table {
            let what = format!("grain table at sector {table}");
            self.cache = bytes(
                self.path,
                self.file,
                self.len,
                table * 512,
                self.s.gtes * 4,
                &what,
            )?;
            self.cached = table;
        }
        self.looked += 1;
        let sector = le32(&self.cache, 4 * (g % self.s.gtes) as usize) as u64;
        if sector == 0 || (sector == 1 && self.s.flags & ZERO_GRAIN != 0) {
            return Ok(false);
        }
        // what qemu reads of the grain: all of it, or the marker of a compressed one
        let need = if self.s.compressed && self.s.flags & MARKERS != 0 {
            self.last = self.last.max(sector);
            12
        } else if self.s.compressed {
            1 // a deflate stream of unknown length: it starts inside the file
        } else {
            let guest_end = (self.s.capacity * 512).min((g + 1) * self.s.grain * 512);
            guest_end - g * self.s.grain * 512
        };
        let what = format!("grain {g} at sector {sector}");
        self.inside(sector * 512, need, &what)?;
        Ok(true)
    }

    /// The last compressed grain ends inside the file (its marker gives its size).
    fn check_last_compressed(&self) -> Result<(), ImageError> {
        if self.last == 0 {
            return Ok(());
        }
        let at = self.last * 512;
        let marker = bytes(self.path, self.file, self.len, at, 12, "grain marker")?;
        let size = le32(&marker, 8) as u64;
        let what = format!("compressed grain at sector {}", self.last);
        self.inside(at, 12 + size, &what)
    }

    fn inside(&self, at: u64, n: u64, what: &str) -> Result<(), ImageError> {
        if at.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(ImageError::truncated(
                self.path,
                format!(
                    "{what} ({n} bytes) lies past the end of the {}-byte file",
                    self.len
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{open_disk, DiskStream, OpenOptions};
    use std::io::Read;
    use std::process::Command;

    /// A stream-optimized vmdk as VMware writes it: `gdOffset` in the header says "at
    /// the end", and a footer (marker, header copy, end-of-stream) holds the real one.
    fn with_footer(image: &[u8]) -> Vec<u8> {
        let mut v = image.to_vec();
        let mut marker = [0u8; 512];
        marker[12..16].copy_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&marker);
        v.extend_from_slice(&image[..512]);
        v.extend_from_slice(&[0u8; 512]);
        v[56..64].copy_from_slice(&GD_AT_END.to_le_bytes());
        v
    }

    #[test]
    fn a_footer_gives_the_same_map_and_qemu_reads_the_same_disk() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("d.raw");
        let mut data = vec![0u8; 6 << 20];
        for (i, b) in data[1 << 20..3 << 20].iter_mut().enumerate() {
            *b = (i % 253) as u8 | 1;
        }
        std::fs::write(&raw, &data).unwrap();
        let stream = dir.path().join("s.vmdk");
        let out = crate::test_tools::output(Command::new("qemu-img").args([
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            raw.to_str().unwrap(),
            stream.to_str().unwrap(),
        ]));
        assert!(out.status.success(), "{out:?}");
        let image = std::fs::read(&stream).unwrap();
        let footed = dir.path().join("f.vmdk");
        std::fs::write(&footed, with_footer(&image)).unwrap();
        let map_of = |p: &Path| {
            let f = File::open(p).unwrap();
            allocation(p, &f, f.metadata().unwrap().len())
                .unwrap()
                .unwrap()
        };
        let map = map_of(&stream);
        assert_eq!(map, map_of(&footed));
        assert!((2 << 20..=3 << 20).contains(&map.data_bytes()), "{map:?}");
        let disk = open_disk(&footed, &OpenOptions::default()).unwrap().disk;
        let mut back = Vec::new();
        DiskStream::new(disk).read_to_end(&mut back).unwrap();
        assert!(back == data, "qemu reads another disk through the footer");
    }

    #[test]
    fn a_grain_past_the_end_is_truncation_and_odd_headers_decline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.vmdk");
        // 1 MiB disk, 64 KiB grains, one table at sector 2 whose first grain is at
        // sector 4000 of a 3-sector file
        let mut v = vec![0u8; 3 * 512];
        v[..4].copy_from_slice(b"KDMV");
        v[4..8].copy_from_slice(&1u32.to_le_bytes());
        v[12..20].copy_from_slice(&2048u64.to_le_bytes());
        v[20..28].copy_from_slice(&128u64.to_le_bytes());
        v[44..48].copy_from_slice(&128u32.to_le_bytes());
        v[56..64].copy_from_slice(&1u64.to_le_bytes());
        v[512..516].copy_from_slice(&2u32.to_le_bytes());
        v[1024..1028].copy_from_slice(&4000u32.to_le_bytes());
        std::fs::write(&p, &v).unwrap();
        let f = File::open(&p).unwrap();
        let err = allocation(&p, &f, 1536).unwrap_err();
        assert!(err.to_string().contains("grain 0 at sector 4000"), "{err}");
        // a grain size that is not a power of two, or capacity 0 (qemu then serves the
        // embedded descriptor's extents): left to qemu
        for (at, value) in [(20, 100u64), (12, 0)] {
            let mut w = v.clone();
            w[at..at + 8].copy_from_slice(&value.to_le_bytes());
            std::fs::write(&p, &w).unwrap();
            let f = File::open(&p).unwrap();
            assert!(allocation(&p, &f, 1536).unwrap().is_none(), "{at}");
        }
        // a descriptor file shorter than a header is not ours to map
        std::fs::write(&p, b"# Disk DescriptorFile\nRW 8 ZERO\n").unwrap();
        let f = File::open(&p).unwrap();
        assert!(allocation(&p, &f, 32).unwrap().is_none());
    }
}
