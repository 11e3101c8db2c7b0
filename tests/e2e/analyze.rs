//! `bonsai analyze` opens images exactly as `push` does: the same options, the same map
//! (holes neither read nor hashed), the same refusals and exit codes.

use crate::util::*;

#[test]
fn analyze_of_a_4_tib_thin_qcow2_costs_its_data_and_agrees_with_push() {
    let d = Dir::new();
    let img = d.s("thin.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", &img, "4T"]);
    // 2 MiB of data a terabyte in: reading the holes would take hours
    run_tool("qemu-io", &["-c", "write -P 0x5a 1T 2M", &img]);
    let a = bonsai_json(&["analyze", &img, "--json"]);
    let row = &a["images"][0];
    assert_eq!(row["logical_bytes"], 4u64 << 40);
    assert_eq!(row["data_bytes"], 2u64 << 20);
    let store = d.store("st");
    let p = bonsai_json(&["push", &img, "--store", &store, "-o", &d.s("r"), "--json"]);
    assert_eq!(
        p["data_bytes"], row["data_bytes"],
        "the same disk as push reads"
    );
    assert_eq!(p["chunks"], row["chunks"]);
}

#[test]
fn analyze_takes_the_options_its_refusals_name() {
    let d = Dir::new();
    let base = d.s("base.qcow2");
    let top = d.s("top.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", &base, "8M"]);
    run_tool("qemu-io", &["-c", "write -P 7 0 1M", &base]);
    qemu_img(&[
        "create", "-q", "-f", "qcow2", "-b", &base, "-F", "qcow2", &top,
    ]);
    let out = bonsai(&["analyze", &top]);
    fails_as(&out, "--format qcow2 or --follow-references", 2);
    for how in [&["--format", "qcow2"][..], &["--follow-references"][..]] {
        let mut args = vec!["analyze", &top, "--json"];
        args.extend_from_slice(how);
        let a = bonsai_json(&args);
        assert_eq!(a["images"][0]["data_bytes"], 1u64 << 20, "{how:?}");
    }
    // --format raw reads the container bytes as the disk, as push --format raw does
    let raw = bonsai_json(&["analyze", &top, "--format", "raw", "--json"]);
    let len = std::fs::metadata(&top).unwrap().len();
    assert_eq!(raw["images"][0]["logical_bytes"], len);
}

#[test]
fn analyze_opens_an_encrypted_image_with_its_secret_and_refuses_without() {
    let d = Dir::new();
    std::fs::write(d.path("pass"), "hunter2").unwrap();
    let img = d.s("enc.qcow2");
    let secret = format!("secret,id=s0,file={}", d.s("pass"));
    qemu_img(&[
        "create",
        "-q",
        "--object",
        &secret,
        "-f",
        "qcow2",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
        &img,
        "4M",
    ]);
    let out = bonsai(&["analyze", &img]);
    fails_as(&out, "--image-secret-file", 2);
    let a = bonsai_json(&[
        "analyze",
        &img,
        "--image-secret-file",
        &d.s("pass"),
        "--json",
    ]);
    assert_eq!(a["images"][0]["logical_bytes"], 4u64 << 20);
}

#[test]
fn analyze_of_a_truncated_image_is_refused_input() {
    let d = Dir::new();
    let img = d.s("a.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", &img, "16M"]);
    run_tool("qemu-io", &["-c", "write -P 3 0 4M", &img]);
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(d.path("cut.qcow2"), &bytes[..bytes.len() / 2]).unwrap();
    let (cut, store, recipe) = (d.s("cut.qcow2"), d.store("st"), d.s("r"));
    let push = ["push", &cut, "--store", &store, "-o", &recipe];
    for args in [&["analyze", &cut][..], &push[..]] {
        let err = fails_as(&bonsai(args), "is truncated", 2);
        let twice = format!("{cut}: {cut}");
        assert!(!err.contains(&twice), "the file named once: {err}");
    }
}
