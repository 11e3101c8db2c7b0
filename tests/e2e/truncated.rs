//! Images cut short: qemu reads whatever an image maps past the end of its file as
//! zeros, so a truncated vmdk, vdi, parallels, qcow2, vhdx, vhd or qed must be refused
//! (exit 2, "truncated") — or, where the cut took only padding, push the intact disk.
//! Never a pushed disk that differs from the image before the cut.

use crate::tools;
use crate::util::*;
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = tools::output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 6 MiB image of `format` holding 3.5 MiB of data, and its disk as raw (by qemu-img).
fn made(d: &Dir, format: &str, options: &[&str]) -> (String, std::path::PathBuf) {
    let name = format!("d.{format}");
    let mut create = Command::new("qemu-img");
    create.args(["create", "-q", "-f", format]).args(options);
    run(create.arg(d.path(&name)).arg("6M"));
    run(Command::new("qemu-io").args(["-f", format]).args([
        "-c",
        "write -P 0x5a 1M 2M",
        "-c",
        "write -P 0x33 4M 1536k",
        &d.s(&name),
    ]));
    let reference = d.path("reference.raw");
    let mut convert = Command::new("qemu-img");
    convert.args(["convert", "-f", format, "-O", "raw", &d.s(&name)]);
    run(convert.arg(&reference));
    (name, reference)
}

/// Pushes `image`: `Ok(())` after a pull that is byte-identical to `reference`, or the
/// refusal's one line (exit 2, naming the image and the word "truncated").
fn push_or_refuse(d: &Dir, image: &str, reference: &std::path::Path) -> Result<(), String> {
    let (recipe, out) = (
        d.s(&format!("{image}.recipe")),
        d.s(&format!("{image}.raw")),
    );
    let store = d.store("store");
    let pushed = bonsai(&["push", &d.s(image), "--store", &store, "-o", &recipe]);
    if !pushed.status.success() {
        let err = fails_as(&pushed, "truncated", 2);
        assert!(
            err.contains(image),
            "the refusal does not name {image}: {err}"
        );
        assert!(
            !d.path(&format!("{image}.recipe")).exists(),
            "{image}: a recipe was left"
        );
        return Err(err);
    }
    let pulled = bonsai(&["pull", &recipe, "--store", &store, "-o", &out]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(
        same_file(&d.path(&format!("{image}.raw")), reference),
        "{image} was pushed, and its disk differs from the image before the cut"
    );
    Ok(())
}

/// The whole image pushes intact; cut at 50, 90 and 99 % of its length, it never pushes
/// a different disk, and cut in half (data gone for sure) it is refused.
fn cut_each(format: &str, options: &[&str]) {
    let d = Dir::new();
    let (name, reference) = made(&d, format, options);
    cut_and_push(&d, &name, &reference);
}

fn cut_and_push(d: &Dir, name: &str, reference: &std::path::Path) {
    let (d, format) = (d, name.rsplit('.').next().unwrap());
    push_or_refuse(d, name, reference).expect("the whole image is refused");
    let whole = std::fs::read(d.path(name)).unwrap();
    for pct in [50, 90, 99] {
        let cut = format!("cut{pct}.{format}");
        std::fs::write(d.path(&cut), &whole[..whole.len() * pct / 100]).unwrap();
        let pushed = push_or_refuse(d, &cut, reference);
        assert!(
            pct > 50 || pushed.is_err(),
            "{cut} (half the file) was pushed"
        );
    }
}

#[test]
fn a_truncated_monolithic_sparse_vmdk_is_refused() {
    cut_each("vmdk", &["-o", "subformat=monolithicSparse"]);
}

#[test]
fn a_truncated_stream_optimized_vmdk_is_refused() {
    // qemu writes stream-optimized files only by conversion
    let d = Dir::new();
    let (raw, reference) = made(&d, "raw", &[]);
    run(Command::new("qemu-img").args([
        "convert",
        "-f",
        "raw",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        &d.s(&raw),
        &d.s("d.vmdk"),
    ]));
    cut_and_push(&d, "d.vmdk", &reference);
}

#[test]
fn a_truncated_vdi_is_refused() {
    cut_each("vdi", &[]);
}

#[test]
fn a_truncated_parallels_image_is_refused() {
    cut_each("parallels", &[]);
}

#[test]
fn a_truncated_qcow2_with_extended_l2_is_refused() {
    cut_each("qcow2", &["-o", "extended_l2=on"]);
}

#[test]
fn a_truncated_vhdx_is_refused() {
    cut_each("vhdx", &[]);
}

#[test]
fn a_truncated_dynamic_vhd_is_refused() {
    cut_each("vpc", &["-o", "subformat=dynamic"]);
}

#[test]
fn a_truncated_qed_is_refused() {
    cut_each("qed", &[]);
}
