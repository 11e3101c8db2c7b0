//! What an image's header says before any data is read: the files it names (backing
//! file, external data file, vmdk extents, parent), whether it is encrypted, and whether
//! its tables are where a sound image keeps them.
//!
//! Why our own parsing when qemu reads the data: the decision to open a file the image
//! names must be taken before anything opens it, and qemu (like imago) reads zeros where
//! a truncated qcow2's tables should be. Only the few fields these decisions need are
//! parsed; everything else is left to the reader engine.

use super::format::{be32, be64, le32};
use super::{ImageError, ImageFormat};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A file an image names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// "backing file", "external data file", "extent file" or "parent".
    pub kind: &'static str,
    /// The name as written in the image (relative names are relative to its directory).
    pub name: String,
    /// The format the image says the file has, if it says.
    pub format: Option<ImageFormat>,
}

/// The header facts bonsai acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// Files the image names, in the order its reader opens them.
    pub references: Vec<Reference>,
    /// "luks", "qcow2 luks", "qcow2 aes" when the image is encrypted.
    pub encryption: Option<&'static str>,
    /// True when imago reads every feature this image uses (qcow2 only).
    pub native_ok: bool,
}

impl Header {
    /// The backing file or parent, if any.
    pub fn backing(&self) -> Option<&Reference> {
        self.references
            .iter()
            .find(|r| r.kind == "backing file" || r.kind == "parent")
    }
}

/// The largest L1 table qemu accepts (32 MiB), so the table bonsai reads is bounded too.
const MAX_L1_BYTES: u64 = 32 << 20;

/// Reads the header of `file` (`len` bytes) as `format`.
pub fn read(path: &Path, file: &File, len: u64, format: ImageFormat) -> Result<Header, ImageError> {
    match format {
        ImageFormat::Qcow2 => qcow2(path, file, len),
        ImageFormat::Qed => qed(path, file, len),
        ImageFormat::Vmdk => vmdk(path, file, len),
        ImageFormat::Vpc => vpc(path, file, len),
        ImageFormat::Vdi => vdi(path, file, len),
        ImageFormat::Luks => Ok(Header {
            encryption: Some("luks"),
            ..Header::default()
        }),
        ImageFormat::Raw | ImageFormat::Vhdx | ImageFormat::Parallels => Ok(Header::default()),
    }
}

/// Checks the tables of `file` lie where a sound image keeps them (qcow2, qed). Separate
/// from [`read`] so that a guessed image naming a host file is refused for that first,
/// whatever the state of its tables.
pub fn check(path: &Path, file: &File, len: u64, format: ImageFormat) -> Result<(), ImageError> {
    match format {
        ImageFormat::Qcow2 => {
            qcow2(path, file, len)?; // the header's own fields first: it stands alone
            let h = bytes(path, file, len, 0, 104.min(len), "qcow2 header")?;
            let cluster = 1u64 << be32(&h[20..]);
            let incompat = if be32(&h[4..]) == 3 {
                be64(&h[72..])
            } else {
                0
            };
            check_qcow2_tables(
                path,
                file,
                len,
                &h,
                cluster,
                incompat & QCOW2_EXTENDED_L2 != 0,
            )?;
            check_qcow2_snapshots(path, file, len, &h, cluster)
        }
        ImageFormat::Qed => qed(path, file, len).and_then(|_| check_qed(path, file, len)),
        ImageFormat::Vhdx => super::vhdx::check(path, file, len),
        _ => Ok(()),
    }
}

/// The qed L1 table and every L2 table it points to lie inside the file (qemu reads a
/// missing L2 table as an error at best, as zeros at worst).
fn check_qed(path: &Path, file: &File, len: u64) -> Result<(), ImageError> {
    let h = bytes(path, file, len, 0, 64, "qed header")?;
    let (cluster, table) = (le32(&h[4..]) as u64, le32(&h[8..]) as u64);
    let l1 = u64::from_le_bytes(h[40..48].try_into().expect("8"));
    let table_bytes = cluster.saturating_mul(table);
    if l1.checked_add(table_bytes).is_none_or(|end| end > len) {
        return Err(ImageError::truncated(
            path,
            format!("l1 table at byte {l1} lies past the end of the {len}-byte file"),
        ));
    }
    if table_bytes > MAX_L1_BYTES {
        return Ok(()); // larger than qemu makes; qemu checks what it reads
    }
    let entries = bytes(path, file, len, l1, table_bytes, "l1 table")?;
    for (i, e) in entries.chunks_exact(8).enumerate() {
        let l2 = u64::from_le_bytes(e.try_into().expect("8"));
        if l2 != 0 && l2.checked_add(table_bytes).is_none_or(|end| end > len) {
            return Err(ImageError::truncated(
                path,
                format!("l1 entry {i} points to an l2 table at byte {l2}, past the end of the {len}-byte file"),
            ));
        }
    }
    Ok(())
}

/// `n` bytes at `off`, refusing ranges past the end of the file.
pub(super) fn bytes(
    path: &Path,
    file: &File,
    len: u64,
    off: u64,
    n: u64,
    what: &str,
) -> Result<Vec<u8>, ImageError> {
    if off.checked_add(n).is_none_or(|end| end > len) {
        return Err(ImageError::truncated(
            path,
            format!("{what} at byte {off} ({n} bytes) lies past the end of the {len}-byte file"),
        ));
    }
    let mut buf = vec![0u8; n as usize];
    file.read_exact_at(&mut buf, off)
        .map_err(|e| ImageError::io(path, e))?;
    Ok(buf)
}

fn name_at(
    path: &Path,
    file: &File,
    len: u64,
    off: u64,
    n: u64,
    what: &str,
) -> Result<String, ImageError> {
    if n > 4096 {
        return Err(ImageError::damaged(
            path,
            format!("{what} name is {n} bytes long"),
        ));
    }
    let raw = bytes(path, file, len, off, n, what)?;
    String::from_utf8(raw)
        .map_err(|_| ImageError::damaged(path, format!("{what} name is not utf-8")))
}

/// qcow2 incompatible feature bits.
const QCOW2_DIRTY: u64 = 1;
const QCOW2_CORRUPT: u64 = 2;
const QCOW2_DATA_FILE: u64 = 4;
const QCOW2_COMPRESSION: u64 = 8;
const QCOW2_EXTENDED_L2: u64 = 16;
/// qcow2 autoclear bit: the external data file is a valid raw image by itself.
const QCOW2_DATA_FILE_RAW: u64 = 2;
/// qemu's limits on the snapshot table: entries, extra data per entry, total bytes.
const QCOW2_MAX_SNAPSHOTS: u64 = 65536;
const QCOW2_MAX_SNAPSHOT_EXTRA: u64 = 1024;
const QCOW2_MAX_SNAPSHOTS_BYTES: u64 = 64 << 20;

/// The fields of a qcow2 header the checks and the chain need.
struct Qcow2Fields {
    cluster_bits: u32,
    crypt: u32,
    incompat: u64,
    header_len: u64,
}

/// The header's fixed fields, each within what qemu accepts.
fn qcow2_fields(path: &Path, h: &[u8]) -> Result<Qcow2Fields, ImageError> {
    if h.len() < 72 {
        return Err(ImageError::damaged(path, "qcow2 header is cut short"));
    }
    let (version, cluster_bits, size) = (be32(&h[4..]), be32(&h[20..]), be64(&h[24..]));
    if !(2..=3).contains(&version) {
        let why = format!("qcow2 version {version} (known: 2, 3)");
        return Err(ImageError::damaged(path, why));
    }
    if !(9..=21).contains(&cluster_bits) {
        let why = format!("cluster_bits {cluster_bits} (qcow2 allows 9 to 21)");
        return Err(ImageError::damaged(path, why));
    }
    if size > i64::MAX as u64 {
        let why = format!("virtual size {size} is absurd");
        return Err(ImageError::damaged(path, why));
    }
    let (incompat, header_len) = if version == 3 {
        if h.len() < 104 {
            return Err(ImageError::damaged(path, "qcow2 v3 header is cut short"));
        }
        (be64(&h[72..]), be32(&h[100..]) as u64)
    } else {
        (0, 72)
    };
    let known =
        QCOW2_DIRTY | QCOW2_CORRUPT | QCOW2_DATA_FILE | QCOW2_COMPRESSION | QCOW2_EXTENDED_L2;
    let unknown = incompat & !known;
    if unknown != 0 {
        return Err(ImageError::Unsupported {
            path: path.into(),
            what: format!("a qcow2 with unknown incompatible features {unknown:#x}"),
            hint: "convert it with a newer qemu-img convert -O qcow2".into(),
        });
    }
    if incompat & QCOW2_CORRUPT != 0 {
        let why = "qemu marked this qcow2 corrupt; repair it with qemu-img check -r all";
        return Err(ImageError::damaged(path, why));
    }
    let autoclear = if version == 3 { be64(&h[88..]) } else { 0 };
    if autoclear & QCOW2_DATA_FILE_RAW != 0 && incompat & QCOW2_DATA_FILE == 0 {
        let why = "the data-file-raw bit is set but the image has no external data file";
        return Err(ImageError::damaged(path, why));
    }
    Ok(Qcow2Fields {
        cluster_bits,
        crypt: be32(&h[32..]),
        incompat,
        header_len,
    })
}

fn qcow2(path: &Path, file: &File, len: u64) -> Result<Header, ImageError> {
    let h = bytes(path, file, len, 0, 104.min(len), "qcow2 header")?;
    let f = qcow2_fields(path, &h)?;
    let encryption = match f.crypt {
        0 => None,
        1 => Some("qcow2 aes"),
        2 => Some("qcow2 luks"),
        n => {
            let why = format!("unknown encryption method {n}");
            return Err(ImageError::damaged(path, why));
        }
    };
    let mut header = Header {
        encryption,
        native_ok: f.crypt == 0 && f.incompat & !(QCOW2_DATA_FILE) == 0,
        references: Vec::new(),
    };
    let (mut backing_format, mut data_file) = (None, None);
    let cluster = 1u64 << f.cluster_bits;
    qcow2_extensions(
        path,
        file,
        len,
        f.header_len,
        cluster,
        &mut backing_format,
        &mut data_file,
    )?;
    let (boff, bsize) = (be64(&h[8..]), be32(&h[16..]) as u64);
    if boff != 0 && bsize != 0 {
        header.references.push(Reference {
            kind: "backing file",
            name: name_at(path, file, len, boff, bsize, "backing file")?,
            format: backing_format,
        });
    }
    if f.incompat & QCOW2_DATA_FILE != 0 {
        let name = data_file.ok_or_else(|| {
            ImageError::damaged(path, "external data file bit set but no data file named")
        })?;
        header.references.push(Reference {
            kind: "external data file",
            name,
            format: Some(ImageFormat::Raw),
        });
    }
    Ok(header)
}

/// The L1 table, the refcount table and every L2 table the L1 table points to lie inside
/// the file, at cluster-aligned offsets, with reserved bits clear.
fn check_qcow2_tables(
    path: &Path,
    file: &File,
    len: u64,
    h: &[u8],
    cluster: u64,
    extended: bool,
) -> Result<(), ImageError> {
    let size = be64(&h[24..]);
    let l1_size = be32(&h[36..]) as u64;
    let l1_off = be64(&h[40..]);
    let rt_off = be64(&h[48..]);
    let rt_clusters = be32(&h[56..]) as u64;
    let l2_entries = cluster / if extended { 16 } else { 8 };
    let needed = size.div_ceil(cluster).div_ceil(l2_entries);
    if l1_size * 8 > MAX_L1_BYTES {
        return Err(ImageError::damaged(
            path,
            format!("l1 table of {l1_size} entries is larger than qemu allows"),
        ));
    }
    if l1_size < needed {
        return Err(ImageError::damaged(
            path,
            format!("l1 table has {l1_size} entries, a {size}-byte disk needs {needed}"),
        ));
    }
    if !l1_off.is_multiple_of(cluster) || !rt_off.is_multiple_of(cluster) {
        return Err(ImageError::damaged(path, format!("l1 table at byte {l1_off} or refcount table at byte {rt_off} is not cluster-aligned")));
    }
    bytes(path, file, len, rt_off, 0, "refcount table")?;
    if rt_clusters
        .checked_mul(cluster)
        .is_none_or(|n| rt_off.saturating_add(n) > len)
    {
        return Err(ImageError::truncated(path, format!("refcount table at byte {rt_off} ({rt_clusters} clusters) lies past the end of the {len}-byte file")));
    }
    let l1 = bytes(path, file, len, l1_off, l1_size * 8, "l1 table")?;
    for (i, e) in l1.chunks_exact(8).map(be64).enumerate() {
        let off = e & 0x00ff_ffff_ffff_fe00;
        if e & 0x7f00_0000_0000_01ff != 0 {
            return Err(ImageError::damaged(
                path,
                format!(
                    "l1 entry {i} (byte {}) has reserved bits set: {e:#x}",
                    l1_off + 8 * i as u64
                ),
            ));
        }
        if off != 0 && (off % cluster != 0 || off + cluster > len) {
            return Err(ImageError::damaged(
                path,
                format!(
                    "l1 entry {i} points to an l2 table at byte {off}, outside the {len}-byte file"
                ),
            ));
        }
    }
    Ok(())
}

/// The snapshot table as qemu reads it when opening the image (it refuses the image
/// otherwise): cluster-aligned, at most 65536 entries of at most 1024 bytes of extra data,
/// 64 MiB in all, and inside the file.
fn check_qcow2_snapshots(
    path: &Path,
    file: &File,
    len: u64,
    h: &[u8],
    cluster: u64,
) -> Result<(), ImageError> {
    let (count, start) = (be32(&h[60..]) as u64, be64(&h[64..]));
    if count > QCOW2_MAX_SNAPSHOTS {
        return Err(ImageError::damaged(
            path,
            format!("{count} snapshots (qemu allows {QCOW2_MAX_SNAPSHOTS})"),
        ));
    }
    if !start.is_multiple_of(cluster) || start > i64::MAX as u64 {
        return Err(ImageError::damaged(
            path,
            format!("snapshot table at byte {start} is not cluster-aligned or is past any file"),
        ));
    }
    let mut at = start;
    for i in 0..count {
        at = at.div_ceil(8) * 8;
        let what = format!("snapshot {i}");
        let e = bytes(path, file, len, at, 40, &what)?;
        let extra = be32(&e[36..]) as u64;
        if extra > QCOW2_MAX_SNAPSHOT_EXTRA {
            return Err(ImageError::damaged(
                path,
                format!("snapshot {i} has {extra} bytes of extra data (qemu allows {QCOW2_MAX_SNAPSHOT_EXTRA})"),
            ));
        }
        let names =
            u16::from_be_bytes([e[12], e[13]]) as u64 + u16::from_be_bytes([e[14], e[15]]) as u64;
        bytes(path, file, len, at + 40, extra + names, &what)?;
        at += 40 + extra + names;
        if at - start > QCOW2_MAX_SNAPSHOTS_BYTES {
            return Err(ImageError::damaged(
                path,
                "the snapshot table is larger than qemu allows (64 MiB)",
            ));
        }
    }
    Ok(())
}

fn qcow2_extensions(
    path: &Path,
    file: &File,
    len: u64,
    mut off: u64,
    cluster: u64,
    backing_format: &mut Option<ImageFormat>,
    data_file: &mut Option<String>,
) -> Result<(), ImageError> {
    while off + 8 <= cluster.min(len) {
        let h = bytes(path, file, len, off, 8, "header extension")?;
        let (kind, n) = (be32(&h), be32(&h[4..]) as u64);
        off += 8;
        match kind {
            0 => return Ok(()),
            0xe279_2aca => {
                let name = name_at(path, file, len, off, n, "backing format")?;
                *backing_format =
                    Some(ImageFormat::parse(&name).map_err(|e| ImageError::damaged(path, e))?);
            }
            0x4441_5441 => {
                *data_file = Some(name_at(path, file, len, off, n, "external data file")?)
            }
            _ => {}
        }
        off += n.div_ceil(8) * 8;
    }
    Ok(())
}

fn qed(path: &Path, file: &File, len: u64) -> Result<Header, ImageError> {
    let h = bytes(path, file, len, 0, 64, "qed header")?;
    let cluster = le32(&h[4..]) as u64;
    let table = le32(&h[8..]) as u64;
    let features = u64::from_le_bytes(h[16..24].try_into().expect("8"));
    if !cluster.is_power_of_two()
        || !(4096..=(64 << 20)).contains(&cluster)
        || !(1..=16).contains(&table)
    {
        return Err(ImageError::damaged(
            path,
            format!("cluster size {cluster} or table size {table} out of range"),
        ));
    }
    let mut header = Header::default();
    if features & 1 != 0 {
        let (off, n) = (le32(&h[56..]) as u64, le32(&h[60..]) as u64);
        header.references.push(Reference {
            kind: "backing file",
            name: name_at(path, file, len, off, n, "backing file")?,
            format: (features & 4 != 0).then_some(ImageFormat::Raw),
        });
    }
    Ok(header)
}

fn vmdk(path: &Path, file: &File, len: u64) -> Result<Header, ImageError> {
    let head = bytes(path, file, len, 0, 4.min(len), "vmdk header")?;
    let text = if head == b"KDMV" {
        let h = bytes(path, file, len, 0, 512, "vmdk header")?;
        let desc_off = u64::from_le_bytes(h[28..36].try_into().expect("8"));
        let desc_len = u64::from_le_bytes(h[36..44].try_into().expect("8"));
        if desc_off == 0 {
            return Ok(Header::default());
        }
        let raw = bytes(
            path,
            file,
            len,
            desc_off.saturating_mul(512),
            desc_len.min(128).saturating_mul(512),
            "embedded descriptor",
        )?;
        String::from_utf8_lossy(&raw).into_owned()
    } else if head == b"COWD" {
        return Ok(Header::default());
    } else {
        let raw = bytes(path, file, len, 0, len.min(64 << 10), "descriptor")?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let mut header = Header::default();
        for line in text.lines().map(str::trim) {
            let access = ["RW ", "RDONLY ", "NOACCESS "]
                .iter()
                .any(|a| line.starts_with(a));
            if let (true, Some(name)) = (access, quoted(line)) {
                header.references.push(Reference {
                    kind: "extent file",
                    name,
                    format: Some(ImageFormat::Vmdk),
                });
            }
        }
        header.references.extend(vmdk_parent(&text));
        return Ok(header);
    };
    Ok(Header {
        references: vmdk_parent(&text).into_iter().collect(),
        ..Header::default()
    })
}

/// The parent named by a delta disk's descriptor (`parentCID` not `ffffffff`).
fn vmdk_parent(text: &str) -> Option<Reference> {
    let value = |key: &str| {
        text.lines().map(str::trim).find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim_start().trim_start_matches('=').trim().to_string())
        })
    };
    let cid = value("parentCID")?;
    if cid.eq_ignore_ascii_case("ffffffff") {
        return None;
    }
    let hint = value("parentFileNameHint")?;
    Some(Reference {
        kind: "parent",
        name: hint.trim_matches('"').to_string(),
        format: None,
    })
}

fn quoted(line: &str) -> Option<String> {
    let start = line.find('"')? + 1;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

fn vpc(path: &Path, file: &File, len: u64) -> Result<Header, ImageError> {
    let first = bytes(path, file, len, 0, 512.min(len), "vhd footer")?;
    let footer = if first.starts_with(b"conectix") {
        first
    } else {
        bytes(path, file, len, len.saturating_sub(512), 512, "vhd footer")?
    };
    if footer.len() < 512 {
        return Err(ImageError::truncated(path, "the vhd footer is cut short"));
    }
    match be32(&footer[60..]) {
        2 | 3 => Ok(Header::default()),
        4 => Err(ImageError::Unsupported {
            path: path.into(),
            what: "a differencing vhd (its parent is not read)".into(),
            hint: "merge it into its parent on the hypervisor, or qemu-img convert the chain to one image".into(),
        }),
        t => Err(ImageError::damaged(path, format!("vhd disk type {t} (known: 2 fixed, 3 dynamic)"))),
    }
}

fn vdi(path: &Path, file: &File, len: u64) -> Result<Header, ImageError> {
    let h = bytes(path, file, len, 0, 0x50, "vdi header")?;
    match le32(&h[0x4c..]) {
        1 | 2 => Ok(Header::default()),
        t => Err(ImageError::Unsupported {
            path: path.into(),
            what: format!("a vdi of type {t} (differencing or undo)"),
            hint: "clone it to a normal disk with VBoxManage clonemedium first".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_extents_and_parent_are_references() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.vmdk");
        std::fs::write(
            &p,
            "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=abcdef01\n\
             parentFileNameHint=\"base.vmdk\"\ncreateType=\"twoGbMaxExtentSparse\"\n\
             RW 4192256 SPARSE \"d-s001.vmdk\"\nRW 100 FLAT \"d-flat.vmdk\" 0\nRDONLY 8 ZERO\n",
        )
        .unwrap();
        let f = File::open(&p).unwrap();
        let len = f.metadata().unwrap().len();
        let h = read(&p, &f, len, ImageFormat::Vmdk).unwrap();
        let names: Vec<_> = h
            .references
            .iter()
            .map(|r| (r.kind, r.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("extent file", "d-s001.vmdk"),
                ("extent file", "d-flat.vmdk"),
                ("parent", "base.vmdk")
            ]
        );
    }

    #[test]
    fn headers_cut_short_are_refused_not_read_past() {
        // found by fuzzing: a vhd footer of 55 bytes; a qcow2 checked without being read
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let mut v = b"conectix".to_vec();
        v.resize(55, 0);
        std::fs::write(&p, &v).unwrap();
        let f = File::open(&p).unwrap();
        let err = read(&p, &f, 55, ImageFormat::Vpc).unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err}");
        let mut q = b"QFI\xfb\0\0\0\x03".to_vec();
        q.resize(200, 0);
        std::fs::write(&p, &q).unwrap();
        let f = File::open(&p).unwrap();
        assert!(check(&p, &f, 200, ImageFormat::Qcow2).is_err());
    }

    #[test]
    fn qcow2_l1_past_the_end_is_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.qcow2");
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h[36..40].copy_from_slice(&2u32.to_be_bytes());
        h[40..48].copy_from_slice(&(1u64 << 20).to_be_bytes());
        std::fs::write(&p, &h).unwrap();
        let f = File::open(&p).unwrap();
        let err = read(&p, &f, 512, ImageFormat::Qcow2)
            .and_then(|_| check(&p, &f, 512, ImageFormat::Qcow2))
            .unwrap_err();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("is truncated: l1 table at byte 1048576"),
            "{err}"
        );
    }
}
