//! "verified" means the bytes at OUT are exactly the image the recipe describes (issue 11):
//! crafted recipes and tampered partial files fail or are repaired, never pass; OUT is
//! checked before any download; recipes and outputs are never silently replaced.

use crate::util::*;
use bonsai_core::recipe::{BlockRef, Extent};
use bonsai_core::Recipe;

const MIB: usize = 1024 * 1024;

/// An image with data, a hole in the middle and data again; pushed to an embedded store.
fn pushed(d: &Dir) -> (Vec<u8>, Recipe) {
    let mut data = noise(3 * MIB, 71);
    data[MIB..2 * MIB].fill(0);
    std::fs::write(d.path("vm.raw"), &data).unwrap();
    std::fs::create_dir(d.path("store")).unwrap();
    bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &d.s("store"),
        "-o",
        &d.s("vm.recipe"),
        "--json",
    ]);
    let recipe = Recipe::open(&d.path("vm.recipe")).unwrap();
    (data, recipe)
}

fn pull(d: &Dir, recipe: &str, out: &str) -> std::process::Output {
    bonsai(&[
        "pull",
        recipe,
        "--store",
        &d.s("store"),
        "-o",
        out,
        "--json",
    ])
}

/// A recipe whose first block is declared 100 bytes shorter than it is, followed by a
/// 100-byte hole, with the image hash of what it describes: exit non-zero, no OUT.
#[test]
fn crafted_short_block_recipe_does_not_verify() {
    let d = Dir::new();
    let (_, honest) = pushed(&d);
    let b = honest.blocks[0];
    let mut crafted = Recipe {
        version: honest.version,
        header: honest.header,
        logical_size: b.len as u64,
        image_hash: honest.image_hash,
        blocks: vec![BlockRef {
            len: b.len - 100,
            ..b
        }],
        extents: vec![Extent::Block { index: 0 }, Extent::Hole { len: 100 }],
    };
    crafted.image_hash = crafted.extents_hash();
    let f = std::fs::File::create(d.path("crafted.recipe")).unwrap();
    crafted.write_to(f).unwrap();
    let out = pull(&d, &d.s("crafted.recipe"), &d.s("out.raw"));
    fails_as(&out, "recipe says", EXIT_VERIFY);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "no report printed"
    );
    assert!(!d.path("out.raw").exists());
}

/// A leftover partial file with bytes planted in a hole and a block: the re-run keeps
/// only what verifies, and OUT is byte-identical to the image.
#[test]
fn tampered_partial_file_is_repaired_not_trusted() {
    let d = Dir::new();
    let (data, recipe) = pushed(&d);
    let mut planted = data.clone();
    planted[MIB + 4242] = 0xAA;
    planted[7] ^= 0xFF;
    let partial = bonsai_core::pull::partial_path(&d.path("out.raw"), &recipe);
    std::fs::write(&partial, &planted).unwrap();
    let out = pull(&d, &d.s("vm.recipe"), &d.s("out.raw"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert!(v["resumed_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["fetched_blocks"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(std::fs::read(d.path("out.raw")).unwrap(), data);
    assert!(!partial.exists());
}

/// OUT a directory: refused at once, nothing created; an existing OUT is never replaced.
#[test]
fn out_directory_and_existing_out_are_refused_before_download() {
    let d = Dir::new();
    let (data, recipe) = pushed(&d);
    std::fs::create_dir(d.path("dir")).unwrap();
    let before = listing(d.0.path());
    let out = pull(&d, &d.s("vm.recipe"), &d.s("dir"));
    fails_as(&out, "is a directory", EXIT_USAGE);
    assert_eq!(listing(d.0.path()), before, "nothing created");
    assert!(!bonsai_core::pull::partial_path(&d.path("dir"), &recipe).exists());
    std::fs::write(d.path("taken.raw"), b"mine").unwrap();
    let out = pull(&d, &d.s("vm.recipe"), &d.s("taken.raw"));
    fails_as(&out, "exists", EXIT_USAGE);
    assert_eq!(std::fs::read(d.path("taken.raw")).unwrap(), b"mine");
    let _ = data;
}

/// A symlink at the partial file's predictable name is refused, its target untouched.
#[test]
fn symlink_planted_at_partial_name_is_not_followed() {
    let d = Dir::new();
    let (_, recipe) = pushed(&d);
    std::fs::write(d.path("victim"), b"precious").unwrap();
    let partial = bonsai_core::pull::partial_path(&d.path("out.raw"), &recipe);
    std::os::unix::fs::symlink(d.path("victim"), &partial).unwrap();
    let out = pull(&d, &d.s("vm.recipe"), &d.s("out.raw"));
    fails_as(&out, "symbolic link", EXIT_LOCAL_IO);
    assert_eq!(std::fs::read(d.path("victim")).unwrap(), b"precious");
    assert!(!d.path("out.raw").exists());
}

/// An existing recipe is not replaced by a push; the recipe written is private (0600).
#[test]
fn existing_recipe_is_kept_and_recipes_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    pushed(&d);
    let mode = std::fs::metadata(d.path("vm.recipe"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    let before = std::fs::read(d.path("vm.recipe")).unwrap();
    std::fs::write(d.path("other.recipe"), b"precious").unwrap();
    let out = bonsai(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &d.s("store"),
        "-o",
        &d.s("other.recipe"),
    ]);
    fails_as(&out, "exists", EXIT_USAGE);
    assert_eq!(std::fs::read(d.path("other.recipe")).unwrap(), b"precious");
    assert_eq!(std::fs::read(d.path("vm.recipe")).unwrap(), before);
    assert!(listing(d.0.path()).iter().all(|n| !n.ends_with(".tmp")));
}
