//! Writing a pulled image in another container: the verified raw image is converted with
//! `qemu-img convert`, the result compared with the raw image by `qemu-img compare`, then
//! published under OUT's name (temporary name, fsync, rename) and the raw image removed.
//!
//! Why qemu-img: it writes every format hypervisors read, and it is what a user would run
//! by hand. Why compare: a converted image is only as good as the converter, and
//! "verified" must mean the bytes at OUT are the image; the comparison reads holes cheaply.
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
    /// vhd (vpc), dynamic, with the exact disk size (no CHS rounding).
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

/// qemu-img convert, then qemu-img compare against the source, then fsync.
fn convert_file(raw: &Path, tmp: &Path, format: OutputFormat) -> io::Result<()> {
    let head = ["convert", "-q", "-f", "raw", "-O", format.name()];
    let mut args: Vec<&std::ffi::OsStr> = head.iter().map(|s| s.as_ref()).collect();
    args.extend(format.options().iter().map(|s| std::ffi::OsStr::new(*s)));
    args.extend([raw.as_os_str(), tmp.as_os_str()]);
    qemu_img(&args)?;
    qemu_img(&[
        "compare".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "raw".as_ref(),
        "-F".as_ref(),
        format.name().as_ref(),
        raw.as_os_str(),
        tmp.as_os_str(),
    ])
    .map_err(|e| {
        io::Error::other(format!(
            "the converted {} image differs from the verified raw image: {e}",
            format.name()
        ))
    })?;
    std::fs::File::open(tmp)?.sync_all()
}

/// The pull engine's converter for an output format other than raw.
#[derive(Debug, Clone, Copy)]
pub struct QemuConvert(pub OutputFormat);

impl crate::pull::Convert for QemuConvert {
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
}
