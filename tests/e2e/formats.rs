//! Real VM disk formats, made with qemu-img: qcow2 (plain, compressed, with a backing
//! file) reads as the same logical disk as raw; pulls write raw or qcow2; damaged images
//! give clear errors; sparse raw files stay sparse.

use crate::util::*;
use std::path::Path;
use std::process::Command;

const MIB: usize = 1024 * 1024;

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img is installed");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn qemu_compare(a: &Path, b: &Path) {
    let out = Command::new("qemu-img")
        .arg("compare")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qemu-img compare: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The extents (offset, length, id, key) of a recipe, without the source format.
fn extents(recipe: &str) -> serde_json::Value {
    let out = bonsai(&["recipe", "show", recipe, "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["extents"].clone()
}

fn disk(d: &Dir) -> std::path::PathBuf {
    let raw = d.path("disk.raw");
    image(
        &raw,
        24 * MIB as u64,
        &[
            (MIB as u64, &text(3 * MIB, 60)),
            (9 * MIB as u64, &noise(2 * MIB, 61)),
            (20 * MIB as u64, &text(MIB, 62)),
        ],
    );
    raw
}

#[test]
fn raw_and_qcow2_of_one_disk_give_the_same_recipe() {
    let d = Dir::new();
    let raw = disk(&d);
    qemu_img(&[
        "convert",
        "-O",
        "qcow2",
        &d.s("disk.raw"),
        &d.s("disk.qcow2"),
    ]);
    qemu_img(&[
        "convert",
        "-c",
        "-O",
        "qcow2",
        &d.s("disk.raw"),
        &d.s("disk-c.qcow2"),
    ]);
    qemu_img(&[
        "convert",
        "-O",
        "qcow2",
        "-o",
        "compat=0.10",
        &d.s("disk.raw"),
        &d.s("disk-v2.qcow2"),
    ]);
    let store = d.store("store");
    let first = bonsai_json(&[
        "push",
        &d.s("disk.raw"),
        "--store",
        &store,
        "-o",
        &d.s("raw.recipe"),
        "--json",
    ]);
    assert!(first["new_chunks"].as_u64().unwrap() > 0);
    for name in ["disk.qcow2", "disk-c.qcow2", "disk-v2.qcow2"] {
        let recipe = d.s(&format!("{name}.recipe"));
        let r = bonsai_json(&[
            "push",
            &d.s(name),
            "--store",
            &store,
            "-o",
            &recipe,
            "--json",
        ]);
        assert_eq!(
            r["new_chunks"], 0,
            "{name} sent blocks the raw push already stored"
        );
        assert_eq!(r["image_hash"], first["image_hash"], "{name}");
        assert_eq!(extents(&recipe), extents(&d.s("raw.recipe")), "{name}");
    }
    // qcow2-sourced recipe pulled to raw and to qcow2
    bonsai_json(&[
        "pull",
        &d.s("disk-c.qcow2.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out.raw"),
        "--json",
    ]);
    assert!(same_file(&raw, &d.path("out.raw")));
    let p = bonsai_json(&[
        "pull",
        &d.s("disk-c.qcow2.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out.qcow2"),
        "--output-format",
        "qcow2",
        "--json",
    ]);
    assert_eq!(p["verified"], true);
    qemu_compare(&raw, &d.path("out.qcow2"));
    let info = bonsai_json(&["inspect", &d.s("out.qcow2"), "--json"]);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual_size"], 24 * MIB as u64);
    assert!(
        listing(d.0.path()).iter().all(|n| !n.starts_with('.')),
        "temporaries left behind"
    );
}

#[test]
fn qcow2_with_a_backing_file_reads_through() {
    let d = Dir::new();
    let raw = disk(&d);
    qemu_img(&[
        "convert",
        "-O",
        "qcow2",
        &d.s("disk.raw"),
        &d.s("base.qcow2"),
    ]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        &d.s("top.qcow2"),
    ]);
    // change 1 MiB in the overlay
    let patch = d.path("patch.bin");
    std::fs::write(&patch, noise(MIB, 63)).unwrap();
    let out = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            &format!("write -P 0x5a {} {}", 4 * MIB, MIB),
        ])
        .arg(d.path("top.qcow2"))
        .output();
    let changed = matches!(out, Ok(ref o) if o.status.success());
    let info = bonsai_json(&["inspect", &d.s("top.qcow2"), "--json"]);
    assert_eq!(info["backing_chain"][0], d.s("base.qcow2"));
    assert_eq!(info["virtual_size"], 24 * MIB as u64);
    let store = d.store("store");
    bonsai_json(&[
        "push",
        &d.s("top.qcow2"),
        "--store",
        &store,
        "-o",
        &d.s("top.recipe"),
        "--json",
    ]);
    bonsai_json(&[
        "pull",
        &d.s("top.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("top.raw"),
        "--json",
    ]);
    qemu_compare(&d.path("top.qcow2"), &d.path("top.raw"));
    if !changed {
        assert!(same_file(&raw, &d.path("top.raw")));
    }

    // the backing file gone: a clear error naming it
    std::fs::rename(d.path("base.qcow2"), d.path("gone.qcow2")).unwrap();
    let out = bonsai(&[
        "push",
        &d.s("top.qcow2"),
        "--store",
        &store,
        "-o",
        &d.s("x.recipe"),
    ]);
    fails_with(&out, "base.qcow2");
    assert!(!d.path("x.recipe").exists());
}

#[test]
fn damaged_qcow2_images_give_clear_errors() {
    let d = Dir::new();
    disk(&d);
    qemu_img(&[
        "convert",
        "-O",
        "qcow2",
        &d.s("disk.raw"),
        &d.s("disk.qcow2"),
    ]);
    let good = std::fs::read(d.path("disk.qcow2")).unwrap();
    std::fs::write(d.path("short.qcow2"), &good[..good.len() / 3]).unwrap();
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&[0, 0, 0, 9]); // version 9
    std::fs::write(d.path("version.qcow2"), &bad).unwrap();
    let mut bad = good.clone();
    bad[20..24].copy_from_slice(&[0, 0, 0, 2]); // cluster_bits 2
    std::fs::write(d.path("clusters.qcow2"), &bad).unwrap();
    for name in ["short.qcow2", "version.qcow2", "clusters.qcow2"] {
        let out = bonsai(&[
            "push",
            &d.s(name),
            "--store",
            &d.store("store"),
            "-o",
            &d.s("x.recipe"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{name} was accepted");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: error does not name the file: {err}"
        );
        assert!(!d.path("x.recipe").exists());
    }
    // --format raw reads the container bytes as a raw disk, on request
    let r = bonsai_json(&[
        "push",
        &d.s("disk.qcow2"),
        "--format",
        "raw",
        "--store",
        &d.store("store"),
        "-o",
        &d.s("y.recipe"),
        "--json",
    ]);
    assert_eq!(r["logical_bytes"], good.len() as u64);
}

#[test]
fn sparse_8gib_raw_stays_sparse() {
    let d = Dir::new();
    let img = d.path("big.raw");
    let size = 8u64 << 30;
    image(
        &img,
        size,
        &[
            (0, &noise(2 * MIB, 70)),
            (3 << 30, &text(2 * MIB, 71)),
            (size - MIB as u64, &noise(MIB, 72)),
        ],
    );
    let info = bonsai_json(&["inspect", &d.s("big.raw"), "--json"]);
    assert_eq!(info["format"], "raw");
    assert!(info["allocated_bytes"].as_u64().unwrap() <= 6 * MIB as u64);
    let store = d.store("store");
    let p = bonsai_json(&[
        "push",
        &d.s("big.raw"),
        "--store",
        &store,
        "-o",
        &d.s("big.recipe"),
        "--json",
    ]);
    assert!(p["data_bytes"].as_u64().unwrap() <= 6 * MIB as u64);
    bonsai_json(&[
        "pull",
        &d.s("big.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out.raw"),
        "--json",
    ]);
    let alloc = allocated(&d.path("out.raw"));
    assert!(alloc <= 8 * MIB as u64, "pulled file allocates {alloc}");
    assert_eq!(std::fs::metadata(d.path("out.raw")).unwrap().len(), size);
}

/// Pulling in place over an older copy fetches only what changed; its stale data in the
/// new image's holes fails verification unless --discard-holes zeroes them. The same path
/// writes block devices; where loop devices can be made (root), one is written too.
#[test]
fn in_place_pull_over_an_older_copy_and_onto_a_block_device() {
    let d = Dir::new();
    let os = [text(3 * MIB, 90), noise(3 * MIB, 91)].concat();
    let old = d.path("old.raw");
    let new = d.path("new.raw");
    image(
        &old,
        16 * MIB as u64,
        &[(0, &os), (10 * MIB as u64, &noise(2 * MIB, 92))],
    );
    let mut os2 = os.clone();
    os2[4 * MIB..4 * MIB + 100_000].copy_from_slice(&noise(100_000, 93));
    image(&new, 16 * MIB as u64, &[(0, &os2)]); // zeros where old had data at 10 MiB
    let store = d.store("store");
    let p = bonsai_json(&[
        "push",
        &d.s("new.raw"),
        "--store",
        &store,
        "-o",
        &d.s("new.recipe"),
        "--json",
    ]);

    std::fs::copy(&old, d.path("target.raw")).unwrap();
    let out = bonsai(&[
        "pull",
        &d.s("new.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("target.raw"),
        "--in-place",
    ]);
    fails_with(&out, "--discard-holes");
    let r = bonsai_json(&[
        "pull",
        &d.s("new.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("target.raw"),
        "--in-place",
        "--discard-holes",
        "--json",
    ]);
    assert!(same_file(&new, &d.path("target.raw")));
    assert!(
        r["resumed_bytes"].as_u64().unwrap() >= 5 * MIB as u64,
        "{r}"
    );
    assert!(r["fetched_blocks"].as_u64().unwrap() < p["unique_chunks"].as_u64().unwrap());

    // a block device, if this machine lets us make one
    let loopdev = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(d.path("old.raw"))
        .output();
    let Ok(loopdev) = loopdev else { return };
    if !loopdev.status.success() {
        eprintln!("no loop devices here; the in-place file path above covers the same code");
        return;
    }
    let dev = String::from_utf8_lossy(&loopdev.stdout).trim().to_string();
    let r = bonsai(&[
        "pull",
        &d.s("new.recipe"),
        "--store",
        &store,
        "-o",
        &dev,
        "--discard-holes",
        "--json",
    ]);
    let _ = Command::new("losetup").args(["-d", &dev]).status();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        same_file(&new, &d.path("old.raw")),
        "device content differs"
    );
}
