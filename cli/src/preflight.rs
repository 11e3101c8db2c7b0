//! Checks made before any work: is the input a disk image, may the output be written?
//!
//! Why here: a mistake should cost nothing. `pull -o DIR` must fail before a byte is
//! downloaded, `push /dev/zero` must not register an empty image, and an existing recipe
//! or image (a recipe is the only key to its image) must not be replaced unless `--force`.
//! The engines check again when they publish; these checks give the early, clear refusal.
//!
//! Choice for empty inputs: a regular file of 0 bytes is a true empty image and is pushed;
//! a block device reporting 0 bytes (a detached loop device, say) is refused.

use crate::exit::Refusal;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

fn refuse<T>(msg: String) -> anyhow::Result<T> {
    Err(Refusal(msg).into())
}

/// What a file type is, in words, for refusals.
fn kind_of(t: &FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// IMAGE must be a regular file or a block device (symlinks followed). A missing path is
/// left to the image reader, whose error says so.
pub(crate) fn image_input(image: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::metadata(image) else {
        return Ok(());
    };
    let t = meta.file_type();
    if t.is_file() || t.is_block_device() {
        return Ok(());
    }
    refuse(format!(
        "image {} is {}, not a disk image; give a regular file or a block device",
        image.display(),
        kind_of(&t)
    ))
}

/// Refuses a block device whose size is 0 (`logical_size` as the image reader found it).
pub(crate) fn image_not_empty_device(image: &Path, logical_size: u64) -> anyhow::Result<()> {
    let is_device = std::fs::metadata(image).is_ok_and(|m| m.file_type().is_block_device());
    if is_device && logical_size == 0 {
        return refuse(format!(
            "block device {} reports 0 bytes (not attached?); nothing to push",
            image.display()
        ));
    }
    Ok(())
}

/// A file the command will create at `path` (`what`: "recipe", "output"): not a
/// directory, its directory exists, and it does not exist unless `force`.
pub(crate) fn new_file(path: &Path, what: &str, force: bool) -> anyhow::Result<()> {
    if path.is_dir() {
        return refuse(format!(
            "{what} {} is a directory; give a file name inside it",
            path.display()
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(_) if !force => refuse(format!(
            "{what} {} exists; pass --force to replace it, or choose another name",
            path.display()
        )),
        Ok(_) => Ok(()),
        Err(_) => parent_exists(path, what),
    }
}

/// The directory `path` will be created in exists.
fn parent_exists(path: &Path, what: &str) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Ok(()),
    };
    if parent.is_dir() {
        return Ok(());
    }
    refuse(format!(
        "{what} {}: directory {} does not exist",
        path.display(),
        parent.display()
    ))
}

/// OUT of a pull: a block device or `--in-place` is written into (it may exist, it must
/// not be a directory); anything else is a new file.
pub(crate) fn pull_output(out: &Path, force: bool, in_place: bool) -> anyhow::Result<()> {
    let meta = std::fs::metadata(out).ok();
    let is_device = meta
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device());
    if is_device {
        return Ok(());
    }
    if in_place {
        if meta.as_ref().is_some_and(|m| !m.is_file()) {
            let t = meta.expect("checked").file_type();
            return refuse(format!(
                "output {} is {}; --in-place writes into a regular file or a block device",
                out.display(),
                kind_of(&t)
            ));
        }
        return parent_exists(out, "output");
    }
    new_file(out, "output", force)
}

/// Every `--seed` must be a readable regular file or block device, checked before the
/// first byte is fetched: a typo otherwise surfaced only after a partial file was made.
pub(crate) fn seeds(seeds: &[std::path::PathBuf]) -> anyhow::Result<()> {
    for seed in seeds {
        let meta = match std::fs::metadata(seed) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(crate::exit::Failed::new(
                    crate::exit::Exit::NotFound,
                    format!(
                        "seed {} does not exist (check --seed); nothing fetched",
                        seed.display()
                    ),
                )
                .into())
            }
            Err(e) => return refuse(format!("seed {}: {e}", seed.display())),
        };
        let t = meta.file_type();
        if !(t.is_file() || t.is_block_device()) {
            return refuse(format!(
                "seed {} is {}; a seed is an image file or a block device",
                seed.display(),
                kind_of(&t)
            ));
        }
        if let Err(e) = std::fs::File::open(seed) {
            return refuse(format!("seed {} cannot be read: {e}", seed.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_must_be_images() {
        let t = tempfile::tempdir().unwrap();
        let e = image_input(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero is a character device"), "{e}");
        assert!(image_input(t.path())
            .unwrap_err()
            .to_string()
            .contains("a directory"));
        let f = t.path().join("empty.raw");
        std::fs::write(&f, b"").unwrap();
        image_input(&f).unwrap();
        image_not_empty_device(&f, 0).unwrap();
        image_input(&t.path().join("absent")).unwrap();
    }

    #[test]
    fn outputs_are_not_clobbered() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("out.raw");
        new_file(&f, "output", false).unwrap();
        std::fs::write(&f, b"x").unwrap();
        let e = new_file(&f, "output", false).unwrap_err().to_string();
        assert!(e.contains("exists; pass --force"), "{e}");
        new_file(&f, "output", true).unwrap();
        let e = pull_output(t.path(), true, false).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        pull_output(&f, false, true).unwrap();
        let e = new_file(&t.path().join("no/such/x"), "recipe", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
