//! The files an image is made of, decided before any of them is opened by a reader:
//! the image, its backing chain (nearest first), external data files and vmdk extents.
//!
//! Rules: when the format was guessed from content, an image that names another file is
//! refused unless the user said to follow references (a guest writes its own first
//! sector, so a guessed header must not make bonsai read a host file); a chain that comes
//! back to a file already in it, or deeper than [`MAX_DEPTH`], is refused.

use super::format::{detect_file, Detected};
use super::header::{self, Header};
use super::{ImageError, ImageFormat};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Deepest backing chain read.
pub const MAX_DEPTH: usize = 64;

/// One image of a chain.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The file.
    pub path: PathBuf,
    /// Its container format.
    pub format: ImageFormat,
    /// What its header says.
    pub header: Header,
    /// True for a block device (read by qemu's `host_device` driver).
    pub block_device: bool,
    /// Bytes in the file (or device).
    pub len: u64,
}

impl Layer {
    /// Files this layer names other than its backing file (data files, extents),
    /// resolved against its directory.
    pub fn side_files(&self) -> Vec<PathBuf> {
        self.header
            .references
            .iter()
            .filter(|r| r.kind == "external data file" || r.kind == "extent file")
            .map(|r| resolve(&self.path, &r.name))
            .collect()
    }
}

/// How the user asked for an image to be read.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The format, as the user named it; `None` detects it (and then forbids references
    /// unless `follow_references`).
    pub format: Option<ImageFormat>,
    /// Open files the image names even when its format was guessed.
    pub follow_references: bool,
    /// File holding the passphrase of an encrypted image (its exact bytes, as qemu reads
    /// a `secret` object's file).
    pub secret_file: Option<PathBuf>,
}

/// A name written in an image, resolved as qemu does: relative to the image's directory.
pub fn resolve(image: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        image.parent().unwrap_or_else(|| Path::new(".")).join(p)
    }
}

/// Opens `path` and reads its size (block devices: where a seek to the end lands).
pub fn open_file(path: &Path) -> Result<(File, u64, bool), ImageError> {
    let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ImageError::io(path, e))?;
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok((file, meta.len(), false));
    }
    use std::os::unix::fs::FileTypeExt;
    if !ft.is_block_device() {
        return Err(ImageError::Unsupported {
            path: path.into(),
            what: "not a regular file or block device".into(),
            hint: "give an image file or a block device".into(),
        });
    }
    use std::io::Seek;
    let len = (&file)
        .seek(std::io::SeekFrom::End(0))
        .map_err(|e| ImageError::io(path, e))?;
    Ok((file, len, true))
}

/// The format of `path`: `given`, else detected (refusing recognised-but-unread formats).
fn format_of(
    path: &Path,
    file: &File,
    len: u64,
    given: Option<ImageFormat>,
) -> Result<ImageFormat, ImageError> {
    if let Some(f) = given {
        return Ok(f);
    }
    match detect_file(file, len).map_err(|e| ImageError::io(path, e))? {
        Detected::Format(f) => Ok(f),
        Detected::Unsupported(what) => Err(ImageError::Unsupported {
            path: path.into(),
            what: what.into(),
            hint: "convert it with qemu-img convert -O qcow2 and push the result".into(),
        }),
    }
}

/// The top layer of `path` alone (format detected), for describing an image whose
/// references are not to be opened.
pub fn resolve_top(path: &Path) -> Result<Layer, ImageError> {
    let (file, len, block_device) = open_file(path)?;
    let format = format_of(path, &file, len, None)?;
    let header = header::read(path, &file, len, format)?;
    Ok(Layer {
        path: path.into(),
        format,
        header,
        block_device,
        len,
    })
}

/// Resolves the chain of `path`, applying the rules above.
pub fn resolve_chain(path: &Path, opts: &OpenOptions) -> Result<Vec<Layer>, ImageError> {
    let may_follow = opts.format.is_some() || opts.follow_references;
    let mut layers: Vec<Layer> = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some((path.to_path_buf(), opts.format));
    while let Some((p, given)) = next.take() {
        let (file, len, block_device) = open_file(&p)?;
        let meta = file.metadata().map_err(|e| ImageError::io(&p, e))?;
        if !seen.insert((meta.dev(), meta.ino())) || layers.len() >= MAX_DEPTH {
            let mut names: Vec<String> = layers
                .iter()
                .map(|l| l.path.display().to_string())
                .collect();
            names.push(p.display().to_string());
            return Err(ImageError::Loop {
                path: path.into(),
                chain: names.join(" -> "),
            });
        }
        let format = format_of(&p, &file, len, given)?;
        let header = header::read(&p, &file, len, format)?;
        if let (false, Some(r)) = (may_follow, header.references.first()) {
            return Err(ImageError::GuessedReference {
                path: p,
                format,
                kind: r.kind,
                name: r.name.clone(),
            });
        }
        header::check(&p, &file, len, format)?;
        if let Some(b) = header.backing() {
            if b.name.starts_with("json:") || b.name.contains("://") {
                return Err(ImageError::Unsupported {
                    path: p,
                    what: format!(
                        "an image whose backing file is a qemu specification ({:?})",
                        b.name
                    ),
                    hint: "rebase it onto a plain file with qemu-img rebase".into(),
                });
            }
            next = Some((resolve(&p, &b.name), b.format));
        }
        layers.push(Layer {
            path: p,
            format,
            header,
            block_device,
            len,
        });
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_resolve_beside_the_image() {
        assert_eq!(
            resolve(Path::new("/a/b/top.qcow2"), "base.raw"),
            Path::new("/a/b/base.raw")
        );
        assert_eq!(
            resolve(Path::new("/a/b/top.qcow2"), "/etc/x"),
            Path::new("/etc/x")
        );
        assert_eq!(resolve(Path::new("top.qcow2"), "base"), Path::new("base"));
    }
}
