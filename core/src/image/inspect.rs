//! `bonsai inspect`: a user's first questions about an image — format, virtual size,
//! allocated bytes, the files it is made of, encryption — answered by the same code that
//! opens it for a push, so what inspect says is what push will do.
//!
//! When the format was guessed and the image names other files, those files are listed
//! (as the image names them) but not opened; `--format` or `--follow-references` opens
//! them. An encrypted image without its secret is described from its header alone.

use super::chain::{self, OpenOptions};
use super::open::{open_disk, Engine};
use super::{ImageError, ImageFormat};
use std::path::Path;

/// What `bonsai inspect --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    /// The file.
    pub path: String,
    /// Container format of the file.
    pub format: ImageFormat,
    /// True when the format was detected from the content.
    pub format_guessed: bool,
    /// Size of the guest-visible disk (`null` when it cannot be opened: encrypted
    /// without its secret).
    pub virtual_size: Option<u64>,
    /// Bytes of the guest disk that hold data (not holes or zero clusters), over the whole
    /// chain; `null` when the disk cannot be opened.
    pub allocated_bytes: Option<u64>,
    /// Size of the file itself.
    pub file_bytes: u64,
    /// Backing files, nearest first (resolved beside the image that names them).
    pub backing_chain: Vec<String>,
    /// Every file a push reads, top first; only the image itself when references are not
    /// followed.
    pub files: Vec<String>,
    /// Files the image names that were not opened (format guessed, no
    /// `--follow-references`): "kind: name".
    pub unfollowed_references: Vec<String>,
    /// "luks", "qcow2 luks", "qcow2 aes", or `null`.
    pub encryption: Option<String>,
    /// The engine that reads it (`null` when it cannot be opened).
    pub engine: Option<Engine>,
}

/// Describes an image (format detected).
pub fn inspect(path: &Path, format: Option<ImageFormat>) -> Result<ImageInfo, ImageError> {
    inspect_with(
        path,
        &OpenOptions {
            format,
            ..OpenOptions::default()
        },
    )
}

/// Describes an image as `opts` would open it.
pub fn inspect_with(path: &Path, opts: &OpenOptions) -> Result<ImageInfo, ImageError> {
    let (file, len, _) = chain::open_file(path)?;
    drop(file);
    let follow = OpenOptions {
        follow_references: true,
        ..opts.clone()
    };
    let may_follow = opts.format.is_some() || opts.follow_references;
    let (layers, unfollowed) = if may_follow {
        (chain::resolve_chain(path, &follow)?, Vec::new())
    } else {
        match chain::resolve_chain(path, opts) {
            // The top layer alone: its header is read, nothing it names is opened.
            Err(ImageError::GuessedReference { .. }) => {
                let mut only = chain::resolve_top(path)?;
                let names = only
                    .header
                    .references
                    .iter()
                    .map(|r| format!("{}: {}", r.kind, r.name))
                    .collect();
                only.header.references.clear();
                (vec![only], names)
            }
            other => (other?, Vec::new()),
        }
    };
    let encryption = layers
        .iter()
        .find_map(|l| l.header.encryption)
        .map(String::from);
    let mut info = ImageInfo {
        path: path.display().to_string(),
        format: layers[0].format,
        format_guessed: opts.format.is_none(),
        virtual_size: None,
        allocated_bytes: None,
        file_bytes: len,
        backing_chain: layers[1..]
            .iter()
            .map(|l| l.path.display().to_string())
            .collect(),
        files: Vec::new(),
        unfollowed_references: unfollowed,
        encryption,
        engine: None,
    };
    if info.encryption.is_some() && opts.secret_file.is_none() {
        info.files = vec![info.path.clone()];
        return Ok(info);
    }
    if !info.unfollowed_references.is_empty() {
        info.files = vec![info.path.clone()];
        return Ok(info);
    }
    let opened = open_disk(path, &follow)?;
    info.files = opened
        .files_read
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    info.virtual_size = Some(opened.disk.size());
    info.engine = Some(opened.engine);
    info.allocated_bytes =
        Some(data_bytes(opened.disk.as_ref()).map_err(|e| ImageError::io(path, e))?);
    Ok(info)
}

/// Bytes of `disk` not known to be zero, from its map alone.
fn data_bytes(disk: &dyn super::Disk) -> std::io::Result<u64> {
    let (mut pos, mut data) = (0, 0);
    while pos < disk.size() {
        let e = disk.extent_at(pos)?;
        if !e.zero {
            data += e.len;
        }
        pos += e.len.max(1);
    }
    Ok(data)
}
