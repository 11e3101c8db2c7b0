//! Refusing truncated images read through qemu. qemu's block layer reads whatever an
//! image maps past the end of its file as zeros, so a vmdk, vdi, parallels, qed or qcow2
//! cut short would push a disk whose tail is silently zero. Before any data is read,
//! `qemu-img map` (on the exact node tree the daemon serves) gives every allocated
//! extent's offset in its file; one that ends past the file's end is a refusal. Formats
//! whose qemu driver checks this itself (vhdx, vpc) are refused by qemu, and its words
//! are passed on.

use super::chain::Layer;
use super::ImageError;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What qemu says when it refuses an image for a table pointing past the end of its file.
const QEMU_PAST_END: [&str; 3] = ["after end of file", "after the end of file", "truncated"];

/// Refuses `layers` (top first, as served by `tree`) when an allocated extent lies past
/// the end of the file holding it. `secret` is the `--object` unlocking encrypted layers.
/// A map qemu-img cannot make for another reason is left to the daemon to report.
pub fn check(layers: &[Layer], tree: &Value, secret: Option<&Value>) -> Result<(), ImageError> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["map", "--output=json", "-U"]);
    if let Some(s) = secret {
        cmd.arg("--object").arg(s.to_string());
    }
    cmd.arg(format!("json:{tree}"));
    let top = &layers[0].path;
    let out = cmd.output().map_err(|e| ImageError::Reader {
        path: top.clone(),
        message: format!("cannot run qemu-img ({e}); install qemu-utils"),
    })?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).to_lowercase();
        let said = said.trim().trim_start_matches("qemu-img: ");
        return match refused(top, said.lines().next().unwrap_or("")) {
            Some(e) => Err(e),
            None => Ok(()),
        };
    }
    let map: Vec<Value> = serde_json::from_slice(&out.stdout).map_err(|e| ImageError::Reader {
        path: top.clone(),
        message: format!("qemu-img map printed no map ({e})"),
    })?;
    past_end(layers, &map)
}

/// The refusal qemu's words `said` (lowercase, one line) mean when qemu itself refused
/// `path` for a table pointing past the end of the file; `None` for any other reason.
pub fn refused(path: &Path, said: &str) -> Option<ImageError> {
    QEMU_PAST_END
        .iter()
        .any(|w| said.contains(w))
        .then(|| ImageError::truncated(path, format!("the reader says: {said}")))
}

/// The first extent of `map` that ends past the end of the file it lies in.
fn past_end(layers: &[Layer], map: &[Value]) -> Result<(), ImageError> {
    let mut lens: Vec<Option<(PathBuf, u64)>> = vec![None; layers.len()];
    for e in map {
        // only allocated data: an unallocated subcluster of an allocated extended-L2
        // cluster has an offset too, past the end of a file qemu never extended over it
        if e["data"] != true {
            continue;
        }
        let (Some(offset), Some(length)) = (e["offset"].as_u64(), e["length"].as_u64()) else {
            continue;
        };
        let depth = e["depth"].as_u64().unwrap_or(0) as usize;
        let Some(layer) = layers.get(depth) else {
            continue;
        };
        let (path, len) = match &lens[depth] {
            Some(known) => known.clone(),
            None => {
                let known = data_file(layer)?;
                lens[depth] = Some(known.clone());
                known
            }
        };
        if offset.saturating_add(length) > len {
            let at = offset.max(len); // the first mapped byte the file lacks
            let detail = format!("data at file offset {at} lies past its end ({len} bytes)");
            return Err(ImageError::truncated(&path, detail));
        }
    }
    Ok(())
}

/// The file a layer's data offsets point into, and its length: its external data file or
/// largest extent if it names one, else the layer's own file.
fn data_file(layer: &Layer) -> Result<(PathBuf, u64), ImageError> {
    let mut best = (layer.path.clone(), layer.len);
    let side = layer.side_files();
    if side.is_empty() {
        return Ok(best);
    }
    best.1 = 0;
    for f in side {
        let len = std::fs::metadata(&f)
            .map_err(|e| ImageError::io(&f, e))?
            .len();
        if len >= best.1 {
            best = (f, len);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{open_disk, OpenOptions};

    fn made(dir: &Path, name: &str, create: &[&str], write: &str) -> PathBuf {
        let p = dir.join(name);
        let out =
            crate::test_tools::output(Command::new("qemu-img").args(create).arg(&p).arg("8M"));
        assert!(out.status.success(), "{out:?}");
        let out = crate::test_tools::output(Command::new("qemu-io").args(["-c", write]).arg(&p));
        assert!(out.status.success(), "{out:?}");
        p
    }

    #[test]
    fn unallocated_subclusters_past_the_end_are_not_data() {
        let dir = tempfile::tempdir().unwrap();
        let create = ["create", "-q", "-f", "qcow2", "-o", "extended_l2=on"];
        // 4 KiB of a 64 KiB cluster: the file ends inside the cluster, and qemu-img map
        // gives the unallocated rest an offset past that end
        let p = made(dir.path(), "l2.qcow2", &create, "write -P 0x5a 1M 4k");
        let opened = open_disk(&p, &OpenOptions::default()).unwrap();
        assert_eq!(opened.engine, crate::image::Engine::Qemu);
    }

    #[test]
    fn a_vdi_cut_short_is_refused_with_the_offset_and_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let create = ["create", "-q", "-f", "vdi"];
        let vdi = made(dir.path(), "d.vdi", &create, "write -P 0x5a 1M 3M");
        let opened = open_disk(&vdi, &OpenOptions::default()).unwrap();
        drop(opened);
        let len = std::fs::metadata(&vdi).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&vdi).unwrap();
        f.set_len(len * 9 / 10).unwrap();
        let err = open_disk(&vdi, &OpenOptions::default()).err().unwrap();
        assert!(matches!(err, ImageError::Truncated { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("d.vdi is truncated: data at file offset"),
            "{text}"
        );
        assert!(
            text.contains(&format!("past its end ({} bytes)", len * 9 / 10)),
            "{text}"
        );
    }
}
