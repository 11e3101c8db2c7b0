//! Writing a pulled image in another container: the verified raw image is converted with
//! `qemu-img convert`, the result compared with the raw image by `qemu-img compare`, then
//! published under OUT's name (temporary name, fsync, rename) and the raw image removed.
//!
//! Why qemu-img: it writes every format hypervisors read, and it is what a user would run
//! by hand. Why compare: a converted image is only as good as the converter, and
//! "verified" must mean the bytes at OUT are the image; the comparison reads holes cheaply.
//! qemu's vhdx driver maps nothing, so `qemu-img compare` reads a vhdx's every hole (39 s
//! for a 3 GiB sparse disk): a vhdx is compared through bonsai's own reader instead,
//! which maps it from its BAT ([`crate::image::allocation`]) and reads its data through qemu.
//!
//! Every container counts whole 512-byte sectors: a disk whose size is not a multiple of
//! 512 is written padded with zeros to the next sector ([`padded_size`]); the comparison
//! checks the padding reads as zeros, and `bonsai pull` says so.
//! Caveat: until a shared publish helper exists, the temporary file is created by
//! qemu-img beside OUT (`.NAME.FORMAT.tmp`, removed first if a stale one exists).

use std::io;
use std::path::Path;
use std::process::Command;

/// Containers `bonsai pull` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Raw, sparse.
    Raw,
    /// qcow2 (compat 1.1).
    Qcow2,
    /// vmdk, monolithicSparse.
    Vmdk,
    /// vhdx, dynamic.
    Vhdx,
    /// vhd (vpc), dynamic, with the exact disk size (no CHS rounding; whole sectors).
    Vpc,
}

impl OutputFormat {
    /// qemu's name of the format.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Raw => "raw",
            OutputFormat::Qcow2 => "qcow2",
            OutputFormat::Vmdk => "vmdk",
            OutputFormat::Vhdx => "vhdx",
            OutputFormat::Vpc => "vpc",
        }
    }

    /// The format a file name asks for by its extension (`.qcow2`, `.vmdk`, `.vhdx`,
    /// `.vhd`/`.vpc`); `None` for anything else (written raw).
    pub fn from_name(path: &Path) -> Option<OutputFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "qcow2" => Some(OutputFormat::Qcow2),
            "vmdk" => Some(OutputFormat::Vmdk),
            "vhdx" => Some(OutputFormat::Vhdx),
            "vhd" | "vpc" => Some(OutputFormat::Vpc),
            _ => None,
        }
    }

    fn options(self) -> &'static [&'static str] {
        match self {
            OutputFormat::Vpc => &["-o", "subformat=dynamic,force_size=on"],
            _ => &[],
        }
    }
}

/// The size of the disk `format` holds for a raw disk of `size` bytes: `size` for raw,
/// else rounded up to whole 512-byte sectors.
pub fn padded_size(format: OutputFormat, size: u64) -> u64 {
    match format {
        OutputFormat::Raw => size,
        _ => size.div_ceil(512) * 512,
    }
}

fn qemu_img(args: &[&std::ffi::OsStr]) -> io::Result<()> {
    let out = Command::new("qemu-img").args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing this format needs qemu-img (package qemu-utils): {e}"),
        )
    })?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().next().unwrap_or("no message").trim();
    Err(io::Error::other(format!(
        "qemu-img failed ({}): {line}",
        out.status
    )))
}

/// Turns the verified raw image `raw` into `out` in `format`; `out` appears only when
/// complete and compared equal (never over an existing file unless `force`); `raw` is
/// kept — the pull engine removes its partial file itself.
///
/// qemu-img writes into a fresh private directory beside `out` (random name, 0700), so
/// no predictable temporary name can be planted as a symlink; the finished file is then
/// published with [`crate::publish::move_into`].
pub fn convert_raw(
    raw: &Path,
    out: &Path,
    format: OutputFormat,
    force: bool,
) -> Result<(), crate::Error> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let at = |source: io::Error| crate::Error::Io {
        path: out.to_path_buf(),
        source,
    };
    let work = tempfile::Builder::new()
        .prefix(".bonsai-convert-")
        .tempdir_in(dir)
        .map_err(at)?;
    let tmp = work.path().join("image");
    convert_file(raw, &tmp, format).map_err(at)?;
    crate::publish::move_into(&tmp, out, force)
}

/// qemu-img convert, then the comparison against the source, then fsync.
fn convert_file(raw: &Path, tmp: &Path, format: OutputFormat) -> io::Result<()> {
    let head = ["convert", "-q", "-f", "raw", "-O", format.name()];
    let mut args: Vec<&std::ffi::OsStr> = head.iter().map(|s| s.as_ref()).collect();
    args.extend(format.options().iter().map(|s| std::ffi::OsStr::new(*s)));
    args.extend([raw.as_os_str(), tmp.as_os_str()]);
    qemu_img(&args)?;
    let compared = match format {
        OutputFormat::Vhdx => compare_by_map(raw, tmp, format),
        _ => qemu_img(&[
            "compare".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "raw".as_ref(),
            "-F".as_ref(),
            format.name().as_ref(),
            raw.as_os_str(),
            tmp.as_os_str(),
        ]),
    };
    compared.map_err(|e| {
        io::Error::other(format!(
            "the converted {} image differs from the verified raw image: {e}",
            format.name()
        ))
    })?;
    std::fs::File::open(tmp)?.sync_all()
}

/// Compares `image` (in `format`) with `raw` through bonsai's reader: its size is `raw`'s
/// padded to whole sectors, its data runs read as `raw` does there, and where it maps
/// zeros `raw` holds none (read only where `raw` has data: holes cost nothing).
fn compare_by_map(raw: &Path, image: &Path, format: OutputFormat) -> io::Result<()> {
    let opts = crate::image::OpenOptions {
        format: crate::image::ImageFormat::parse(format.name()).ok(),
        ..Default::default()
    };
    let disk = crate::image::open_disk(image, &opts)
        .map_err(io::Error::other)?
        .disk;
    let raw_file = std::fs::File::open(raw)?;
    let len = raw_file.metadata()?.len();
    if disk.size() != padded_size(format, len) {
        return Err(io::Error::other(format!(
            "it holds a disk of {} bytes, the image {len}",
            disk.size()
        )));
    }
    let mut pos = 0;
    while pos < disk.size() {
        let run = disk.extent_at(pos)?;
        let end = pos + run.len;
        if run.zero {
            raw_zero(&raw_file, pos, end.min(len))?;
        } else {
            same_bytes(&*disk, &raw_file, len, pos, end)?;
        }
        pos = end;
    }
    Ok(())
}

/// Reads of at most this many bytes at a time.
const COMPARE_STEP: usize = 4 << 20;

/// `raw` (of `len` bytes, zeros after) reads as `disk` does over `start..end`.
fn same_bytes(
    disk: &dyn crate::image::Disk,
    raw: &std::fs::File,
    len: u64,
    start: u64,
    end: u64,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let (mut a, mut b) = (vec![0u8; COMPARE_STEP], vec![0u8; COMPARE_STEP]);
    let mut pos = start;
    while pos < end {
        let n = (end - pos).min(COMPARE_STEP as u64) as usize;
        disk.read_at(&mut a[..n], pos)?;
        let in_raw = len.saturating_sub(pos).min(n as u64) as usize;
        raw.read_exact_at(&mut b[..in_raw], pos)?;
        b[in_raw..n].fill(0);
        if a[..n] != b[..n] {
            return Err(io::Error::other(format!(
                "they differ in bytes {pos}..{}",
                pos + n as u64
            )));
        }
        pos += n as u64;
    }
    Ok(())
}

/// `raw` holds only zeros over `start..end`: its holes are skipped, its data read.
fn raw_zero(raw: &std::fs::File, start: u64, end: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; COMPARE_STEP];
    let mut pos = start;
    loop {
        let (data, data_end) = crate::image::next_data(raw, pos, end)?;
        if data >= end {
            return Ok(());
        }
        let mut at = data;
        while at < data_end {
            let n = (data_end - at).min(COMPARE_STEP as u64) as usize;
            raw.read_exact_at(&mut buf[..n], at)?;
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(io::Error::other(format!(
                    "bytes {at}..{} are zeros in it and not in the image",
                    at + n as u64
                )));
            }
            at += n as u64;
        }
        pos = data_end.max(data + 1);
    }
}

/// The pull engine's converter for an output format other than raw.
#[derive(Debug, Clone, Copy)]
pub struct QemuConvert(pub OutputFormat);

impl super::Convert for QemuConvert {
    fn convert(&self, raw: &Path, out: &Path, force: bool) -> Result<(), crate::Error> {
        convert_raw(raw, out, self.0, force)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_choose_formats() {
        assert_eq!(
            OutputFormat::from_name(Path::new("a/vm.QCOW2")),
            Some(OutputFormat::Qcow2)
        );
        assert_eq!(
            OutputFormat::from_name(Path::new("vm.vhd")),
            Some(OutputFormat::Vpc)
        );
        assert_eq!(
            OutputFormat::from_name(Path::new("vm.vhdx")),
            Some(OutputFormat::Vhdx)
        );
        assert_eq!(
            OutputFormat::from_name(Path::new("vm.vmdk")),
            Some(OutputFormat::Vmdk)
        );
        assert_eq!(OutputFormat::from_name(Path::new("vm.img")), None);
        assert_eq!(OutputFormat::from_name(Path::new("vm")), None);
    }

    #[test]
    fn a_vhdx_compared_by_its_map_finds_any_difference() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("d.raw");
        let f = std::fs::File::create(&raw).unwrap();
        f.set_len(512 << 20).unwrap();
        f.write_all_at(&[7u8; 100_000], 128 << 20).unwrap();
        let vhdx = dir.path().join("d.vhdx");
        convert_file(&raw, &vhdx, OutputFormat::Vhdx).unwrap();
        // a byte of data changed, a byte written into a hole, the size changed
        for (at, byte) in [((128 << 20) + 5, 8u8), (384 << 20, 1u8)] {
            let old = f.metadata().unwrap();
            f.write_all_at(&[byte], at).unwrap();
            let err = compare_by_map(&raw, &vhdx, OutputFormat::Vhdx).unwrap_err();
            assert!(err.to_string().contains("bytes"), "{err}");
            let undo = if at == (384 << 20) { 0 } else { 7 };
            f.write_all_at(&[undo], at).unwrap();
            assert_eq!(f.metadata().unwrap().len(), old.len());
        }
        compare_by_map(&raw, &vhdx, OutputFormat::Vhdx).unwrap();
        f.set_len((512 << 20) + 512).unwrap();
        let err = compare_by_map(&raw, &vhdx, OutputFormat::Vhdx).unwrap_err();
        assert!(err.to_string().contains("disk of"), "{err}");
    }
}
