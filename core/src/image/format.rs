//! Which container format a file is, from its own bytes: magic numbers at known offsets.
//!
//! Detection is ours, never qemu's probe: the result decides whether other files the image
//! names may be opened (a guessed format never opens them, see [`super::header`]), so it
//! must be predictable and documented. Caveat: a raw disk whose guest wrote a container
//! header into its first sector is detected as that container — `--format raw` reads it as
//! the raw disk it is.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Every container bonsai reads (and the ones it recognises only to refuse clearly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// A raw disk, a sparse file or a block device.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// VMware: monolithicSparse, streamOptimized (sparse extents with their magic) or a
    /// text descriptor naming extent files (split, flat).
    Vmdk,
    /// Hyper-V / Azure VHDX.
    Vhdx,
    /// Virtual PC / Hyper-V / Azure VHD, fixed or dynamic.
    Vpc,
    /// VirtualBox.
    Vdi,
    /// QEMU enhanced disk.
    Qed,
    /// Parallels / Virtuozzo.
    Parallels,
    /// A LUKS-encrypted raw disk.
    Luks,
}

impl ImageFormat {
    /// Every format, for messages listing them.
    pub const ALL: [ImageFormat; 9] = [
        ImageFormat::Raw,
        ImageFormat::Qcow2,
        ImageFormat::Vmdk,
        ImageFormat::Vhdx,
        ImageFormat::Vpc,
        ImageFormat::Vdi,
        ImageFormat::Qed,
        ImageFormat::Parallels,
        ImageFormat::Luks,
    ];

    /// The name used by `--format`, in JSON and by qemu's block layer (its driver name).
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::Vhdx => "vhdx",
            ImageFormat::Vpc => "vpc",
            ImageFormat::Vdi => "vdi",
            ImageFormat::Qed => "qed",
            ImageFormat::Parallels => "parallels",
            ImageFormat::Luks => "luks",
        }
    }

    /// Parses a `--format` value (`vhd` is accepted for `vpc`).
    pub fn parse(name: &str) -> Result<ImageFormat, String> {
        let lower = name.to_ascii_lowercase();
        if lower == "vhd" {
            return Ok(ImageFormat::Vpc);
        }
        ImageFormat::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| {
                let known: Vec<_> = ImageFormat::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown image format {name:?} (known: {})",
                    known.join(", ")
                )
            })
    }

    /// What the recipe header records (it has codes for raw and qcow2 only; the rest are
    /// `Other` until the recipe format grows codes for them).
    pub fn source_format(self) -> crate::recipe::SourceFormat {
        match self {
            ImageFormat::Raw => crate::recipe::SourceFormat::Raw,
            ImageFormat::Qcow2 => crate::recipe::SourceFormat::Qcow2,
            _ => crate::recipe::SourceFormat::Other,
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the first bytes (and, for fixed VHD, the footer) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A format bonsai reads.
    Format(ImageFormat),
    /// A format recognised but not read; the string says what it is.
    Unsupported(&'static str),
}

/// Bytes of the head [`detect`] looks at.
pub const HEAD_BYTES: usize = 512;

/// Detects the container of `file` (`len` bytes) from its head and its last sector.
pub fn detect_file(file: &File, len: u64) -> io::Result<Detected> {
    let mut head = vec![0u8; HEAD_BYTES.min(len as usize)];
    file.read_exact_at(&mut head, 0)?;
    let mut tail = [0u8; 512];
    let tail = if len >= 1024 {
        file.read_exact_at(&mut tail, len - 512)?;
        Some(&tail[..])
    } else {
        None
    };
    Ok(detect(&head, tail, len))
}

/// Detects a container from its first bytes (`head`, up to [`HEAD_BYTES`]) and its last
/// 512 bytes (`tail`, when the file has at least 1024 bytes). Pure, so it is unit-tested.
pub fn detect(head: &[u8], tail: Option<&[u8]>, len: u64) -> Detected {
    use Detected::{Format, Unsupported};
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, b"QFI\xfb") {
        let version = head.get(4..8).map(be32).unwrap_or(0);
        return if version == 1 {
            Unsupported("qcow (version 1)")
        } else {
            Format(ImageFormat::Qcow2)
        };
    }
    if at(0, b"QED\0") {
        return Format(ImageFormat::Qed);
    }
    if at(0, b"KDMV") || at(0, b"COWD") || is_vmdk_descriptor(head) {
        return Format(ImageFormat::Vmdk);
    }
    if at(0, b"vhdxfile") {
        return Format(ImageFormat::Vhdx);
    }
    if at(0, b"conectix") {
        return Format(ImageFormat::Vpc);
    }
    if head.get(64..68).map(le32) == Some(0xbeda_107f) && at(0, b"<<<") {
        return Format(ImageFormat::Vdi);
    }
    if at(0, b"WithoutFreeSpace") || at(0, b"WithouFreSpacExt") {
        return Format(ImageFormat::Parallels);
    }
    if at(0, b"LUKS\xba\xbe") {
        return Format(ImageFormat::Luks);
    }
    if at(0, b"Bochs Virtual HD Image") {
        return Unsupported("bochs");
    }
    if at(0, b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop") {
        return Unsupported("cloop");
    }
    match tail {
        Some(t) if is_fixed_vhd_footer(t, len) => Format(ImageFormat::Vpc),
        _ => Format(ImageFormat::Raw),
    }
}

/// A vmdk text descriptor starts with this comment line (what VMware and qemu write).
fn is_vmdk_descriptor(head: &[u8]) -> bool {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    head[start..].starts_with(b"# Disk DescriptorFile")
}

/// The footer of a fixed VHD: cookie, a valid checksum, disk type 2 (fixed) and a disk
/// size that fits in the file before the footer.
pub fn is_fixed_vhd_footer(t: &[u8], len: u64) -> bool {
    if t.len() < 512 || &t[..8] != b"conectix" {
        return false;
    }
    let disk_type = be32(&t[60..64]);
    let current_size = be64(&t[48..56]);
    let stored = be32(&t[64..68]);
    let sum: u32 = t[..512]
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .map(|(_, b)| *b as u32)
        .sum();
    disk_type == 2 && !sum == stored && current_size <= len - 512
}

/// Big-endian u32 of the first 4 bytes.
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Big-endian u64 of the first 8 bytes.
pub(crate) fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Little-endian u32 of the first 4 bytes.
pub(crate) fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(head: &[u8]) -> Detected {
        detect(head, None, head.len() as u64)
    }

    #[test]
    fn magics_are_recognised() {
        use ImageFormat::*;
        assert_eq!(fmt(b"QFI\xfb\0\0\0\x03"), Detected::Format(Qcow2));
        assert!(matches!(
            fmt(b"QFI\xfb\0\0\0\x01"),
            Detected::Unsupported(_)
        ));
        assert_eq!(fmt(b"QED\0...."), Detected::Format(Qed));
        assert_eq!(fmt(b"KDMV\x01\0\0\0"), Detected::Format(Vmdk));
        assert_eq!(
            fmt(b"\n# Disk DescriptorFile\nversion=1\n"),
            Detected::Format(Vmdk)
        );
        assert_eq!(fmt(b"vhdxfile"), Detected::Format(Vhdx));
        assert_eq!(fmt(b"conectix"), Detected::Format(Vpc));
        assert_eq!(fmt(b"WithoutFreeSpace"), Detected::Format(Parallels));
        assert_eq!(fmt(b"LUKS\xba\xbe\0\x01"), Detected::Format(Luks));
        let mut vdi = b"<<< Oracle VM VirtualBox Disk Image >>>\n".to_vec();
        vdi.resize(72, 0);
        vdi[64..68].copy_from_slice(&0xbeda_107fu32.to_le_bytes());
        assert_eq!(fmt(&vdi), Detected::Format(Vdi));
        assert_eq!(fmt(&[0u8; 512]), Detected::Format(Raw));
        assert_eq!(fmt(b""), Detected::Format(Raw));
    }

    #[test]
    fn fixed_vhd_needs_a_valid_footer() {
        let mut t = [0u8; 512];
        t[..8].copy_from_slice(b"conectix");
        t[48..56].copy_from_slice(&(1u64 << 20).to_be_bytes());
        t[60..64].copy_from_slice(&2u32.to_be_bytes());
        let sum: u32 = t.iter().map(|b| *b as u32).sum();
        t[64..68].copy_from_slice(&(!sum).to_be_bytes());
        let len = (1 << 20) + 512;
        assert_eq!(
            detect(&[0u8; 512], Some(&t), len),
            Detected::Format(ImageFormat::Vpc)
        );
        t[100] ^= 1; // checksum no longer matches
        assert_eq!(
            detect(&[0u8; 512], Some(&t), len),
            Detected::Format(ImageFormat::Raw)
        );
    }

    #[test]
    fn names_round_trip() {
        for f in ImageFormat::ALL {
            assert_eq!(ImageFormat::parse(f.name()), Ok(f));
        }
        assert_eq!(ImageFormat::parse("VHD"), Ok(ImageFormat::Vpc));
        assert!(ImageFormat::parse("iso")
            .unwrap_err()
            .contains("known: raw"));
    }
}
