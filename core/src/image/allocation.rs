//! A format's own allocation map, for the formats whose qemu driver maps badly over NBD:
//! vhdx reports no map at all (a 1 TiB thin vhdx is a terabyte of zeros read), vmdk one
//! grain table at a time (minutes of block status, and `qemu-img map`, for a thin
//! terabyte), parallels aborts on a disk of 1 TiB or more. bonsai reads their tables
//! itself — the vhdx BAT ([`super::vhdx`]), the vmdk grain directory ([`super::vmdk`]),
//! the parallels BAT ([`super::parallels`]) — so cost follows the data for every format.
//!
//! The map only says where the guest disk *may* hold data; qemu still reads every byte
//! of it. It must never leave out a byte qemu reads as data, so each reader declines
//! (`None`) an image it does not fully understand, and then the disk is mapped by NBD
//! block status as before. The readers also check every mapped block against the file's
//! length, so a map that covers the whole disk replaces [`super::truncated`]'s
//! `qemu-img map` for these images (one that stops short does not).

use super::chain::Layer;
use super::disk::DiskExtent;
use super::{ImageError, ImageFormat};
use std::fs::File;

impl Default for AllocationMap {
    fn default() -> Self {
        AllocationMap::new()
    }
}

/// The most data ranges a map holds; past them the disk is mapped by NBD (a bound on
/// memory for an image whose blocks alternate with holes).
const MAX_RANGES: usize = 1 << 22;

/// Where a guest disk may hold data: sorted, disjoint, merged byte ranges below `covered`.
/// At and past `covered` the map knows nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationMap {
    data: Vec<(u64, u64)>,
    covered: u64,
}

impl AllocationMap {
    /// An empty map that covers nothing yet.
    pub fn new() -> AllocationMap {
        AllocationMap {
            data: Vec::new(),
            covered: 0,
        }
    }

    /// A map of blocks of `block` bytes, `allocated(i)` telling whether block `i` (of
    /// `blocks`) may hold data.
    pub fn from_blocks(block: u64, blocks: u64, mut allocated: impl FnMut(u64) -> bool) -> Self {
        let mut map = AllocationMap::new();
        for i in 0..blocks {
            if !map.add(i * block, (i + 1) * block, allocated(i)) {
                break;
            }
        }
        map
    }

    /// Extends the map over `start..end` (which begins where the map ends), as data or
    /// as zeros. False when the map is full: it then ends at `start`.
    pub fn add(&mut self, start: u64, end: u64, data: bool) -> bool {
        debug_assert_eq!(start, self.covered);
        if data {
            let full = self.data.len() == MAX_RANGES;
            match self.data.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ if full => return false,
                _ => self.data.push((start, end)),
            }
        }
        self.covered = end;
        true
    }

    /// The run at `pos` of a disk of `size` bytes; `None` where the map does not reach.
    pub fn extent_at(&self, pos: u64, size: u64) -> Option<DiskExtent> {
        let limit = self.covered.min(size);
        if pos >= limit {
            return None;
        }
        // the first range ending after pos
        let i = self.data.partition_point(|r| r.1 <= pos);
        let (end, zero) = match self.data.get(i) {
            Some(&(start, end)) if start <= pos => (end, false),
            Some(&(start, _)) => (start, true),
            None => (limit, true),
        };
        Some(DiskExtent {
            len: end.min(limit) - pos,
            zero,
        })
    }

    /// Where the map ends: past it, nothing is known (nor checked against the file).
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Bytes the map says may hold data.
    pub fn data_bytes(&self) -> u64 {
        self.data.iter().map(|r| r.1 - r.0).sum()
    }
}

/// The map of `layers` (top first) when bonsai reads the format's tables itself: one
/// layer, vhdx, a sparse vmdk or parallels. Errors are refusals (a table past the end of the file).
pub fn read(layers: &[Layer]) -> Result<Option<AllocationMap>, ImageError> {
    let [layer] = layers else {
        return Ok(None);
    };
    if layer.block_device || !layer.header.references.is_empty() {
        return Ok(None);
    }
    let reader = match layer.format {
        ImageFormat::Vhdx => super::vhdx::allocation,
        ImageFormat::Vmdk => super::vmdk::allocation,
        ImageFormat::Parallels => super::parallels::allocation,
        _ => return Ok(None),
    };
    let file = File::open(&layer.path).map_err(|e| ImageError::io(&layer.path, e))?;
    reader(&layer.path, &file, layer.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{open_disk, OpenOptions};

    fn qemu_img(args: &[&str]) {
        crate::test_tools::run_ok("qemu-img", args)
    }

    /// A 1 TiB disk holding 4 MiB: every format maps it in a few runs, with no more
    /// data than one allocation unit around what was written, and reads it back.
    #[test]
    fn thin_images_of_every_format_map_only_their_data() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("thin.raw");
        let f = File::create(&raw).unwrap();
        f.set_len(1 << 40).unwrap();
        let at = 700u64 << 30;
        let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
        f.write_all_at(&data, at).unwrap();
        let formats: &[(&str, &[&str])] = &[
            ("vhdx", &[]),
            ("vmdk", &[]),
            ("vmdk", &["-o", "subformat=streamOptimized"]),
            ("vpc", &[]),
            ("vdi", &[]),
            ("qed", &[]),
            ("parallels", &[]),
            ("qcow2", &[]),
        ];
        for (i, (format, opts)) in formats.iter().enumerate() {
            let image = dir.path().join(format!("thin{i}.{format}"));
            let mut args = vec!["convert", "-f", "raw", "-O", format];
            args.extend_from_slice(opts);
            args.extend([raw.to_str().unwrap(), image.to_str().unwrap()]);
            qemu_img(&args);
            let disk = open_disk(&image, &OpenOptions::default()).unwrap().disk;
            let (mut pos, mut runs, mut mapped) = (0, 0, 0);
            while pos < disk.size() {
                let run = disk.extent_at(pos).unwrap();
                if !run.zero {
                    mapped += run.len;
                    assert!(pos <= at && pos + run.len >= at || pos >= at, "{format}");
                }
                pos += run.len;
                runs += 1;
                assert!(runs < 100_000, "{format}: mapped in too many runs");
            }
            assert!(
                (4 << 20..=64 << 20).contains(&mapped),
                "{format} {opts:?}: {mapped} bytes mapped as data"
            );
            let mut back = vec![0u8; data.len()];
            disk.read_at(&mut back, at).unwrap();
            assert!(back == data, "{format} {opts:?}: data read back differs");
        }
    }

    fn run(map: &AllocationMap, pos: u64, size: u64) -> Option<(u64, bool)> {
        map.extent_at(pos, size).map(|e| (e.len, e.zero))
    }

    #[test]
    fn blocks_merge_and_runs_end_where_the_map_does() {
        // blocks 1, 2 and 4 of 6 hold data
        let map = AllocationMap::from_blocks(10, 6, |i| matches!(i, 1 | 2 | 4));
        assert_eq!(map.data, [(10, 30), (40, 50)]);
        assert_eq!(map.data_bytes(), 30);
        assert_eq!(run(&map, 0, 60), Some((10, true)));
        assert_eq!(run(&map, 15, 60), Some((15, false)));
        assert_eq!(run(&map, 30, 60), Some((10, true)));
        assert_eq!(run(&map, 45, 60), Some((5, false)));
        assert_eq!(run(&map, 50, 60), Some((10, true)));
        assert_eq!(run(&map, 60, 60), None);
        // a disk smaller than the map, and one larger: past the map, nothing is known
        assert_eq!(run(&map, 45, 47), Some((2, false)));
        assert_eq!(run(&map, 55, 100), Some((5, true)));
        assert_eq!(run(&map, 60, 100), None);
    }

    #[test]
    fn a_full_map_stops_short_and_claims_nothing_after() {
        let map = AllocationMap::from_blocks(2, u64::MAX / 4, |i| i % 2 == 0);
        assert_eq!(map.data.len(), MAX_RANGES);
        assert_eq!(map.covered, 2 * 2 * MAX_RANGES as u64);
        assert_eq!(run(&map, map.covered, u64::MAX), None);
    }
}
