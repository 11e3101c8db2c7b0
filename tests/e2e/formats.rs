//! Real VM disk formats, made with qemu-img: qcow2 (plain, compressed, with a backing
//! file) reads as the same logical disk as raw; pulls write raw or qcow2; damaged images
//! give clear errors; sparse raw files stay sparse.

use crate::tools;
use crate::util::*;
use std::path::Path;
use std::process::Command;

const MIB: usize = 1024 * 1024;

fn qemu_compare(a: &Path, b: &Path) {
    let out = tools::output(Command::new("qemu-img").arg("compare").arg(a).arg(b));
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
    let out = tools::output(
        Command::new("qemu-io")
            .args(["-f", "qcow2", "-c"])
            .arg(format!("write -P 0x5a {} {}", 4 * MIB, MIB))
            .arg(d.path("top.qcow2")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // guessed: the backing file is named, not opened
    let out = bonsai(&["push", &d.s("top.qcow2"), "--store", &d.store("store")]);
    fails_as(&out, "--format qcow2 or --follow-references", EXIT_USAGE);
    let info = bonsai_json(&["inspect", &d.s("top.qcow2"), "--format", "qcow2", "--json"]);
    assert_eq!(info["backing_chain"][0], d.s("base.qcow2"));
    assert_eq!(info["virtual_size"], 24 * MIB as u64);
    let store = d.store("store");
    let r = bonsai_json(&[
        "push",
        &d.s("top.qcow2"),
        "--format",
        "qcow2",
        "--store",
        &store,
        "-o",
        &d.s("top.recipe"),
        "--json",
    ]);
    assert_eq!(
        r["files_read"],
        serde_json::json!([d.s("top.qcow2"), d.s("base.qcow2")])
    );
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
    assert!(
        !same_file(&raw, &d.path("top.raw")),
        "the overlay's change is lost"
    );

    // the backing file gone: a clear error naming it
    std::fs::rename(d.path("base.qcow2"), d.path("gone.qcow2")).unwrap();
    let out = bonsai(&[
        "push",
        &d.s("top.qcow2"),
        "--follow-references",
        "--store",
        &store,
        "-o",
        &d.s("x.recipe"),
    ]);
    fails_as(&out, "base.qcow2", EXIT_NOT_FOUND);
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
    fails_as(&out, "--discard-holes", EXIT_VERIFY);
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
    let loopdev = tools::output(
        Command::new("losetup")
            .args(["-f", "--show"])
            .arg(d.path("old.raw")),
    );
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

// ---- every hypervisor's format (issue 10) -------------------------------------------

/// One small real disk: an ext4 file system holding a few MiB of real files (documents
/// from /usr/share), made with mkfs.ext4 -d.
fn ext4_disk(d: &Dir) -> std::path::PathBuf {
    let src = d.path("files");
    std::fs::create_dir_all(&src).unwrap();
    let mut total = 0u64;
    let mut stack = vec![std::path::PathBuf::from("/usr/share/doc")];
    'walk: while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && total < 5 * MIB as u64 {
                total += meta.len();
                let name = format!("{total}-{}", p.file_name().unwrap().to_string_lossy());
                std::fs::copy(&p, src.join(name)).unwrap();
            } else if total >= 5 * MIB as u64 {
                break 'walk;
            }
        }
    }
    let raw = d.path("disk.raw");
    let out = tools::output(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
            .arg(&src)
            .arg(&raw)
            .arg("16M"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    raw
}

/// `qemu-img convert -O raw` of `image` (qemu's own view of the guest disk).
fn qemu_raw(d: &Dir, image: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = d.path(&format!("{image}.ref"));
    let (src, dst) = (d.s(image), out.display().to_string());
    let mut args = vec!["convert"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-O", "raw", &src, &dst]);
    qemu_img(&args);
    out
}

/// Pushes `image` (with `extra` options) into `store`; returns the --json figures.
fn push(d: &Dir, image: &str, extra: &[&str]) -> serde_json::Value {
    let (path, recipe, store) = (
        d.s(image),
        d.s(&format!("{image}.recipe")),
        d.store("store"),
    );
    let _ = std::fs::remove_file(&recipe);
    let mut args = vec!["push", &path, "--store", &store, "-o", &recipe, "--json"];
    args.extend_from_slice(extra);
    bonsai_json(&args)
}

/// Pulls the recipe of `image` to raw and checks it equals `reference` byte for byte.
fn pull_equals(d: &Dir, image: &str, reference: &Path) {
    let out = d.path(&format!("{image}.pulled"));
    let _ = std::fs::remove_file(&out);
    let p = bonsai_json(&[
        "pull",
        &d.s(&format!("{image}.recipe")),
        "--store",
        &d.store("store"),
        "-o",
        &out.display().to_string(),
        "--output-format",
        "raw",
        "--json",
    ]);
    assert_eq!(p["verified"], true, "{image}");
    assert!(
        same_file(&out, reference),
        "{image}: pulled disk differs from qemu's"
    );
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn every_format_and_variant_reads_as_its_guest_disk() {
    let d = Dir::new();
    ext4_disk(&d);
    let first = push(&d, "disk.raw", &[]);
    assert!(first["new_chunks"].as_u64().unwrap() > 0);
    assert_eq!(first["source_format"], "raw");
    let variants: &[(&str, &str, &[&str])] = &[
        ("plain.qcow2", "qcow2", &[]),
        ("zlib.qcow2", "qcow2", &["-c"]),
        (
            "zstd.qcow2",
            "qcow2",
            &["-c", "-o", "compression_type=zstd"],
        ),
        ("l2.qcow2", "qcow2", &["-o", "extended_l2=on"]),
        ("v2.qcow2", "qcow2", &["-o", "compat=0.10"]),
        ("sparse.vmdk", "vmdk", &[]),
        ("stream.vmdk", "vmdk", &["-o", "subformat=streamOptimized"]),
        ("disk.vhdx", "vhdx", &[]),
        ("dynamic.vhd", "vpc", &[]),
        ("fixed.vhd", "vpc", &["-o", "subformat=fixed"]),
        ("disk.vdi", "vdi", &[]),
        ("disk.qed", "qed", &[]),
        ("disk.parallels", "parallels", &[]),
    ];
    for (name, format, opts) in variants {
        let mut args = vec!["convert", "-f", "raw", "-O", format];
        args.extend_from_slice(opts);
        let (src, dst) = (d.s("disk.raw"), d.s(name));
        args.extend_from_slice(&[&src, &dst]);
        qemu_img(&args);
    }
    // the dirty bit (set by a crash with lazy refcounts) and an internal snapshot: qemu
    // reads both; the active layer is the disk
    qemu_img(&[
        "convert",
        "-O",
        "qcow2",
        &d.s("disk.raw"),
        &d.s("dirty.qcow2"),
    ]);
    let mut dirty = std::fs::read(d.path("dirty.qcow2")).unwrap();
    dirty[79] |= 1;
    std::fs::write(d.path("dirty.qcow2"), &dirty).unwrap();
    qemu_img(&[
        "convert",
        "-O",
        "qcow2",
        &d.s("disk.raw"),
        &d.s("snap.qcow2"),
    ]);
    qemu_img(&["snapshot", "-c", "before", &d.s("snap.qcow2")]);
    let mut all: Vec<(&str, &str)> = variants.iter().map(|(n, f, _)| (*n, *f)).collect();
    all.extend([("dirty.qcow2", "qcow2"), ("snap.qcow2", "qcow2")]);
    for (name, format) in all {
        let r = push(&d, name, &[]);
        assert_eq!(r["source_format"], format, "{name}");
        assert_eq!(r["files_read"], serde_json::json!([d.s(name)]), "{name}");
        assert_eq!(
            r["new_chunks"], 0,
            "{name} sent blocks the raw disk already stored"
        );
        let reference = qemu_raw(&d, name, &["-f", format]);
        pull_equals(&d, name, &reference);
        std::fs::remove_file(reference).unwrap();
    }
    // written after the snapshot: the active layer, not the snapshot, is the disk
    let out = tools::output(Command::new("qemu-io").args([
        "-c",
        "write -P 0x55 1M 256k",
        &d.s("snap.qcow2"),
    ]));
    assert!(out.status.success());
    let r = push(&d, "snap.qcow2", &[]);
    assert!(r["new_chunks"].as_u64().unwrap() > 0);
    let reference = qemu_raw(&d, "snap.qcow2", &["-f", "qcow2"]);
    assert!(
        std::fs::read(&reference).unwrap()[1 << 20..(1 << 20) + 256 * 1024]
            .iter()
            .all(|b| *b == 0x55)
    );
    pull_equals(&d, "snap.qcow2", &reference);
}

#[test]
fn split_and_flat_vmdk_open_their_extents_only_when_told() {
    let d = Dir::new();
    ext4_disk(&d);
    push(&d, "disk.raw", &[]);
    for (name, sub, extent) in [
        ("split.vmdk", "twoGbMaxExtentSparse", "split-s001.vmdk"),
        ("flat.vmdk", "monolithicFlat", "flat-flat.vmdk"),
    ] {
        let sub = format!("subformat={sub}");
        qemu_img(&[
            "convert",
            "-O",
            "vmdk",
            "-o",
            &sub,
            &d.s("disk.raw"),
            &d.s(name),
        ]);
        assert!(d.path(extent).exists());
        let out = bonsai(&[
            "push",
            &d.s(name),
            "--store",
            &d.store("store"),
            "-o",
            &d.s("x.recipe"),
        ]);
        let err = fails_as(&out, "--format vmdk", EXIT_USAGE);
        assert!(err.contains(extent), "{err}");
        assert!(!d.path("x.recipe").exists());
        for how in [&["--format", "vmdk"][..], &["--follow-references"][..]] {
            let r = push(&d, name, how);
            assert_eq!(r["new_chunks"], 0, "{name}");
            assert_eq!(r["files_read"], serde_json::json!([d.s(name), d.s(extent)]));
            pull_equals(&d, name, &d.path("disk.raw"));
        }
    }
}

/// A raw disk whose guest wrote a qcow2 header naming a host file as its backing file.
fn guest_written_header(disk: &[u8], backing: &str) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[8..16].copy_from_slice(&400u64.to_be_bytes());
    h[16..20].copy_from_slice(&(backing.len() as u32).to_be_bytes());
    h[20..24].copy_from_slice(&16u32.to_be_bytes());
    h[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
    h[36..40].copy_from_slice(&1u32.to_be_bytes());
    h[40..48].copy_from_slice(&65536u64.to_be_bytes());
    h[48..56].copy_from_slice(&131072u64.to_be_bytes());
    h[56..60].copy_from_slice(&1u32.to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes());
    h[100..104].copy_from_slice(&104u32.to_be_bytes());
    h[400..400 + backing.len()].copy_from_slice(backing.as_bytes());
    let mut out = disk.to_vec();
    out[..512].copy_from_slice(&h);
    out
}

#[test]
fn a_guest_written_header_never_opens_a_host_file() {
    let d = Dir::new();
    let raw = ext4_disk(&d);
    // The named host file is a FIFO: opening it for reading blocks until a writer comes,
    // so a bonsai that opened it would hang, and the deadline below would fail the test.
    let fifo = d.path("host-secret");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let guest = guest_written_header(&std::fs::read(&raw).unwrap(), &fifo.display().to_string());
    std::fs::write(d.path("guest.raw"), &guest).unwrap();
    let mut child = Command::new(bin())
        .args([
            "push",
            &d.s("guest.raw"),
            "--store",
            &d.store("store"),
            "-o",
            &d.s("g.recipe"),
        ])
        .env("BONSAI_LOG", "error")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("push hung: it opened the host file the guest named");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = fails_as(&out, "--format qcow2 or --follow-references", EXIT_USAGE);
    assert!(
        err.contains("host-secret") && err.contains("guessed"),
        "{err}"
    );
    assert!(!d.path("g.recipe").exists());
    // inspect names the reference without opening it
    let info = bonsai_json(&["inspect", &d.s("guest.raw"), "--json"]);
    assert_eq!(info["files"], serde_json::json!([d.s("guest.raw")]));
    assert!(info["unfollowed_references"][0]
        .as_str()
        .unwrap()
        .contains("host-secret"));
    // the user says what it is: a raw disk, pushed and pulled as such
    let r = push(&d, "guest.raw", &["--format", "raw"]);
    assert_eq!(r["source_format"], "raw");
    pull_equals(&d, "guest.raw", &d.path("guest.raw"));
}

#[test]
fn damaged_images_fail_loudly() {
    let d = Dir::new();
    ext4_disk(&d);
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
        &d.s("comp.qcow2"),
    ]);
    let good = std::fs::read(d.path("disk.qcow2")).unwrap();
    let be64 = |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let l1 = be64(&good, 40) as usize;
    // the L1 table past the end of the file (what a truncated download looks like)
    let mut b = good.clone();
    b[40..48].copy_from_slice(&(1u64 << 40).to_be_bytes());
    std::fs::write(d.path("l1-past-eof.qcow2"), &b).unwrap();
    // an L1 entry pointing outside the file
    let mut b = good.clone();
    b[l1..l1 + 8].copy_from_slice(&((1u64 << 63) | (1 << 36)).to_be_bytes());
    std::fs::write(d.path("bad-l1-entry.qcow2"), &b).unwrap();
    // an absurd virtual size
    let mut b = good.clone();
    b[24..32].copy_from_slice(&(1u64 << 62).to_be_bytes());
    std::fs::write(d.path("absurd-size.qcow2"), &b).unwrap();
    // compressed clusters with damaged deflate streams (qemu-img reports EIO)
    let mut b = std::fs::read(d.path("comp.qcow2")).unwrap();
    let (cl1, bits) = (
        be64(&b, 40) as usize,
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    );
    let l2 = (be64(&b, cl1) & 0x00ff_ffff_ffff_fe00) as usize;
    let offset_bits = 62 - (bits - 8);
    let mut damaged = 0;
    for i in 0..(1usize << (bits - 3)) {
        let e = be64(&b, l2 + 8 * i);
        if e & (1 << 62) != 0 && damaged < 8 {
            let off = (e & ((1u64 << offset_bits) - 1)) as usize + 64;
            for x in &mut b[off..off + 64] {
                *x = !*x;
            }
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no compressed cluster found");
    std::fs::write(d.path("bad-deflate.qcow2"), &b).unwrap();
    let qemu = tools::output(Command::new("qemu-img").args([
        "convert",
        "-O",
        "raw",
        &d.s("bad-deflate.qcow2"),
        &d.s("scratch.raw"),
    ]));
    assert!(
        !qemu.status.success(),
        "the damage is not one qemu-img reports"
    );
    // a truncated vhdx
    qemu_img(&["convert", "-O", "vhdx", &d.s("disk.raw"), &d.s("disk.vhdx")]);
    let v = std::fs::read(d.path("disk.vhdx")).unwrap();
    std::fs::write(d.path("short.vhdx"), &v[..300 * 1024]).unwrap();
    for (name, problem) in [
        ("l1-past-eof.qcow2", "past the end"),
        ("bad-l1-entry.qcow2", "l1 entry 0"),
        ("absurd-size.qcow2", "needs"),
        ("bad-deflate.qcow2", "is damaged"),
        ("short.vhdx", "short.vhdx"),
    ] {
        let out = bonsai(&[
            "push",
            &d.s(name),
            "--store",
            &d.store("store"),
            "-o",
            &d.s("x.recipe"),
        ]);
        let err = fails_as(&out, problem, EXIT_USAGE);
        assert!(
            err.contains(name),
            "{name}: the error does not name the file: {err}"
        );
        assert!(!d.path("x.recipe").exists(), "{name}: a recipe was written");
    }
}

#[test]
fn a_backing_chain_that_loops_is_refused() {
    let d = Dir::new();
    qemu_img(&["create", "-q", "-f", "qcow2", &d.s("a.qcow2"), "16M"]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "a.qcow2",
        "-F",
        "qcow2",
        &d.s("b.qcow2"),
    ]);
    qemu_img(&[
        "rebase",
        "-u",
        "-b",
        "b.qcow2",
        "-F",
        "qcow2",
        &d.s("a.qcow2"),
    ]);
    let out = bonsai(&[
        "push",
        &d.s("b.qcow2"),
        "--format",
        "qcow2",
        "--store",
        &d.store("store"),
    ]);
    let err = fails_as(&out, "loops", EXIT_USAGE);
    assert!(
        err.contains("b.qcow2 -> ") && err.contains("a.qcow2"),
        "{err}"
    );
    let out = bonsai(&["inspect", &d.s("b.qcow2"), "--follow-references"]);
    fails_as(&out, "loops", EXIT_USAGE);
}

#[test]
fn encrypted_images_need_their_secret() {
    let d = Dir::new();
    let raw = ext4_disk(&d);
    std::fs::write(d.path("pass"), "correct horse").unwrap();
    std::fs::write(d.path("wrong"), "battery staple").unwrap();
    let secret = format!("secret,id=s0,file={}", d.s("pass"));
    qemu_img(&[
        "convert",
        "--object",
        &secret,
        "-O",
        "qcow2",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
        &d.s("disk.raw"),
        &d.s("enc.qcow2"),
    ]);
    qemu_img(&[
        "convert",
        "--object",
        &secret,
        "-O",
        "luks",
        "-o",
        "key-secret=s0,iter-time=10",
        &d.s("disk.raw"),
        &d.s("enc.luks"),
    ]);
    push(&d, "disk.raw", &[]);
    for name in ["enc.qcow2", "enc.luks"] {
        let out = bonsai(&[
            "push",
            &d.s(name),
            "--store",
            &d.store("store"),
            "-o",
            &d.s("x.recipe"),
        ]);
        fails_as(&out, "--image-secret-file", EXIT_USAGE);
        let info = bonsai_json(&["inspect", &d.s(name), "--json"]);
        assert!(
            info["encryption"].as_str().unwrap().contains("luks"),
            "{info}"
        );
        let out = bonsai(&[
            "push",
            &d.s(name),
            "--image-secret-file",
            &d.s("wrong"),
            "--store",
            &d.store("store"),
            "-o",
            &d.s("x.recipe"),
        ]);
        fails_as(&out, "password", EXIT_USAGE);
        assert!(!d.path("x.recipe").exists());
        let r = push(&d, name, &["--image-secret-file", &d.s("pass")]);
        assert_eq!(
            r["new_chunks"], 0,
            "{name}: the plaintext disk dedups against the raw one"
        );
        pull_equals(&d, name, &raw);
    }
}

#[test]
fn an_exabyte_thin_qcow2_maps_and_pushes_in_the_time_of_its_data() {
    let d = Dir::new();
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=2M",
        &d.s("eib.qcow2"),
        "1E",
    ]);
    let out = tools::output(Command::new("qemu-io").args([
        "-c",
        "write -P 0x61 1M 1M",
        "-c",
        "write -P 0x62 512P 3M",
        &d.s("eib.qcow2"),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // inspect walks the whole map: a reader that visited the holes would never finish
    let info = bonsai_json(&["inspect", &d.s("eib.qcow2"), "--json"]);
    assert_eq!(info["virtual_size"], 1u64 << 60);
    // two writes, in three 2 MiB clusters
    assert_eq!(info["allocated_bytes"], 6u64 << 20);
    // pushing it costs its data: holes are skipped by the map, neither read nor hashed
    // (a push that walked 1 EiB of zeros would not finish within the test's lifetime)
    let r = push(&d, "eib.qcow2", &[]);
    assert_eq!(r["logical_bytes"], 1u64 << 60);
    let data = r["data_bytes"].as_u64().unwrap();
    assert!((4u64 << 20..8u64 << 20).contains(&data), "data {data}");
    assert_eq!(
        r["zero_bytes"].as_u64().unwrap() + data,
        1u64 << 60,
        "every byte is a hole or data"
    );
}

#[test]
fn pulls_write_every_output_format() {
    let d = Dir::new();
    let raw = ext4_disk(&d);
    push(&d, "disk.raw", &[]);
    for (flag, out, detected) in [
        (Some("vmdk"), "out-flag.img", "vmdk"),
        (Some("vhdx"), "out.vhdx", "vhdx"),
        (Some("vpc"), "out-flag.vhd", "vpc"),
        (None, "out.vmdk", "vmdk"),
        (None, "out.vhd", "vpc"),
        (None, "out.qcow2", "qcow2"),
        (None, "out.img", "raw"),
    ] {
        let mut args = vec![
            "pull".to_string(),
            d.s("disk.raw.recipe"),
            "--store".into(),
            d.store("store"),
            "-o".into(),
            d.s(out),
            "--json".into(),
        ];
        if let Some(f) = flag {
            args.extend(["--output-format".into(), f.into()]);
        }
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let p = bonsai_json(&args);
        assert_eq!(p["verified"], true);
        let info = bonsai_json(&["inspect", &d.s(out), "--json"]);
        assert_eq!(info["format"], detected, "{out}");
        assert_eq!(
            info["virtual_size"],
            std::fs::metadata(&raw).unwrap().len(),
            "{out}"
        );
        let reference = qemu_raw(&d, out, &[]);
        assert!(same_file(&reference, &raw), "{out} holds another disk");
        std::fs::remove_file(reference).unwrap();
    }
    assert!(
        listing(d.0.path()).iter().all(|n| !n.starts_with('.')),
        "temporaries left behind"
    );
}

/// Sets the creator application and the CHS geometry in a vhd's footer (its last 512
/// bytes) and recomputes the footer's checksum.
fn vhd_footer(image: &mut [u8], creator: &[u8; 4], (c, h, s): (u16, u8, u8)) {
    let start = image.len() - 512;
    let footer = &mut image[start..];
    footer[28..32].copy_from_slice(creator);
    footer[56..58].copy_from_slice(&c.to_be_bytes());
    footer[58] = h;
    footer[59] = s;
    footer[64..68].fill(0);
    let sum = footer.iter().fold(0u32, |s, b| s.wrapping_add(*b as u32));
    footer[64..68].copy_from_slice(&(!sum).to_be_bytes());
}

#[test]
fn a_fixed_vhd_is_the_disk_its_creator_meant() {
    // Hyper-V ("win ") means the footer's current size; Virtual PC ("vpc ") means the CHS
    // geometry, which is smaller here. qemu-img without -f reads a fixed vhd as raw,
    // footer included: neither is the guest's disk.
    let d = Dir::new();
    let size = 1_000_448u64;
    image(&d.path("disk.raw"), size, &[(0, &noise(size as usize, 7))]);
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        "-o",
        "subformat=fixed,force_size=on",
        &d.s("disk.raw"),
        &d.s("made.vhd"),
    ]);
    // qemu's force_size writes the maximum geometry (which means "use the current
    // size" whoever the creator); the geometry Virtual PC gives this size is 28/4/17
    let made = std::fs::read(d.path("made.vhd")).unwrap();
    let geometry = (28u16, 4u8, 17u8);
    let chs = 28 * 4 * 17 * 512;
    for (creator, guest) in [(b"win ", size), (b"vpc ", chs)] {
        let name = format!("{}.vhd", String::from_utf8_lossy(creator).trim());
        let mut v = made.clone();
        vhd_footer(&mut v, creator, geometry);
        std::fs::write(d.path(&name), &v).unwrap();
        let r = push(&d, &name, &[]);
        assert_eq!(r["source_format"], "vpc", "{name}");
        let reference = qemu_raw(&d, &name, &["-f", "vpc"]);
        assert_eq!(
            std::fs::metadata(&reference).unwrap().len(),
            guest,
            "{name}"
        );
        pull_equals(&d, &name, &reference);
        let raw = std::fs::read(d.path("disk.raw")).unwrap();
        assert!(
            std::fs::read(&reference).unwrap() == raw[..guest as usize],
            "{name}: qemu's disk is not the data written"
        );
    }
}

#[test]
fn a_disk_of_odd_size_is_padded_to_whole_sectors_and_the_pull_says_so() {
    let d = Dir::new();
    let size = 1_000_001usize;
    let data = noise(size, 11);
    std::fs::write(d.path("odd.raw"), &data).unwrap();
    push(&d, "odd.raw", &[]);
    for out in ["odd.qcow2", "odd.vmdk", "odd.vhdx", "odd.vhd", "odd.img"] {
        let out_path = d.s(out);
        let args = [
            "pull",
            &d.s("odd.raw.recipe"),
            "--store",
            &d.store("store"),
            "-o",
            &out_path,
        ];
        let pulled = bonsai(&args);
        assert!(pulled.status.success(), "{out}: {pulled:?}");
        let said = String::from_utf8_lossy(&pulled.stderr);
        let expect = if out.ends_with(".img") { 0 } else { 447 };
        assert_eq!(
            said.contains("447 zero bytes after it"),
            expect == 447,
            "{out}: {said}"
        );
        // raw is the exact image (qemu would read it padded too)
        let reference = match expect {
            0 => d.path(out),
            _ => qemu_raw(&d, out, &[]),
        };
        let mut want = data.clone();
        want.resize(size + expect, 0);
        assert!(
            std::fs::read(&reference).unwrap() == want,
            "{out} holds another disk"
        );
    }
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// The first data cluster's L2 entry in a qcow2 file: its byte offset.
fn first_l2_entry(b: &[u8]) -> usize {
    let l2 = (be64(b, be64(b, 40) as usize) & 0x00ff_ffff_ffff_fe00) as usize;
    (0..8192)
        .map(|i| l2 + 8 * i)
        .find(|&at| be64(b, at) != 0)
        .expect("an allocated cluster")
}

#[test]
fn qcow2_mutants_qemu_refuses_are_refused() {
    let d = Dir::new();
    disk(&d);
    let convert = |name: &str, opts: &[&str]| {
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        args.extend_from_slice(opts);
        let (src, dst) = (d.s("disk.raw"), d.s(name));
        args.extend([src.as_str(), dst.as_str()]);
        qemu_img(&args);
        std::fs::read(d.path(name)).unwrap()
    };
    let v3 = convert("v3.qcow2", &[]);
    let v2 = convert("v2.qcow2", &["-o", "compat=0.10"]);
    convert("snap.qcow2", &[]);
    qemu_img(&["snapshot", "-c", "before", &d.s("snap.qcow2")]);
    let snap = std::fs::read(d.path("snap.qcow2")).unwrap();
    let mutants: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "v2-zero-flag.qcow2",
            {
                let mut b = v2.clone();
                let at = first_l2_entry(&b);
                b[at + 7] |= 1;
                b
            },
            "zero cluster",
        ),
        (
            "snapshots-misaligned.qcow2",
            {
                let mut b = v3.clone();
                b[64..72].copy_from_slice(&12345u64.to_be_bytes());
                b
            },
            "not cluster-aligned",
        ),
        (
            "too-many-snapshots.qcow2",
            {
                let mut b = v3.clone();
                b[60..64].copy_from_slice(&70_000u32.to_be_bytes());
                b
            },
            "70000 snapshots",
        ),
        (
            "snapshot-extra.qcow2",
            {
                let mut b = snap.clone();
                let table = be64(&b, 64) as usize;
                b[table + 36..table + 40].copy_from_slice(&5000u32.to_be_bytes());
                b
            },
            "extra data",
        ),
        (
            "data-file-raw.qcow2",
            {
                let mut b = v3.clone();
                b[95] |= 2;
                b
            },
            "data-file-raw",
        ),
    ];
    for (name, bytes, problem) in mutants {
        std::fs::write(d.path(name), &bytes).unwrap();
        let qemu = tools::output(Command::new("qemu-img").args([
            "convert",
            "-O",
            "raw",
            &d.s(name),
            &d.s("scratch.raw"),
        ]));
        assert!(!qemu.status.success(), "{name}: qemu-img reads it");
        let out = bonsai(&[
            "push",
            &d.s(name),
            "--store",
            &d.store("store"),
            "-o",
            &d.s("x.recipe"),
        ]);
        let err = fails_as(&out, problem, EXIT_USAGE);
        assert!(err.contains(name), "{name}: {err}");
        assert!(!d.path("x.recipe").exists(), "{name}: a recipe was written");
    }
    // a size that is not a multiple of 512: qemu's disk is rounded down, so is bonsai's
    let mut b = v3.clone();
    let size = be64(&b, 24);
    b[24..32].copy_from_slice(&(size + 1).to_be_bytes());
    std::fs::write(d.path("odd.qcow2"), &b).unwrap();
    let r = push(&d, "odd.qcow2", &[]);
    assert_eq!(r["logical_bytes"], size);
    let reference = qemu_raw(&d, "odd.qcow2", &[]);
    assert_eq!(std::fs::metadata(&reference).unwrap().len(), size);
    pull_equals(&d, "odd.qcow2", &reference);
}

#[test]
fn thin_terabyte_images_of_every_format_cost_their_data() {
    // 1 TiB holding 3 MiB: a reader that read holes would take hours, not seconds
    let d = Dir::new();
    let raw = d.path("thin.raw");
    image(&raw, 1 << 40, &[(700 << 30, &noise(3 * MIB, 5))]);
    let first = push(&d, "thin.raw", &[]);
    let variants: &[(&str, &str, &[&str])] = &[
        ("thin.qcow2", "qcow2", &[]),
        ("thin.vmdk", "vmdk", &[]),
        ("stream.vmdk", "vmdk", &["-o", "subformat=streamOptimized"]),
        ("thin.vhdx", "vhdx", &[]),
        ("thin.vhd", "vpc", &[]),
        ("thin.vdi", "vdi", &[]),
        ("thin.qed", "qed", &[]),
        ("thin.parallels", "parallels", &[]),
    ];
    for (name, format, opts) in variants {
        let mut args = vec!["convert", "-f", "raw", "-O", format];
        args.extend_from_slice(opts);
        let (src, dst) = (d.s("thin.raw"), d.s(name));
        args.extend_from_slice(&[&src, &dst]);
        qemu_img(&args);
        let r = push(&d, name, &[]);
        assert_eq!(r["source_format"], *format, "{name}");
        assert_eq!(r["logical_bytes"], 1u64 << 40, "{name}");
        assert_eq!(r["data_bytes"], first["data_bytes"], "{name}");
        assert_eq!(r["new_chunks"], 0, "{name}");
        let out = d.path(&format!("{name}.pulled"));
        let p = bonsai_json(&[
            "pull",
            &d.s(&format!("{name}.recipe")),
            "--store",
            &d.store("store"),
            "-o",
            &out.display().to_string(),
            "--json",
        ]);
        assert_eq!(p["verified"], true, "{name}");
        qemu_compare(&out, &raw);
        std::fs::remove_file(&out).unwrap();
    }
}
