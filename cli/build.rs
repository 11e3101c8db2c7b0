//! Records what `bonsai --version` reports beside the version: the commit it was built
//! from (when built from a git checkout), the target and the compiler, so a figure or a
//! bug report can name the exact build.

use std::process::Command;

fn run(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    let commit = run(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]));
    let dirty =
        run(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"])).is_some();
    if let Some(dir) = run(Command::new("git").args(["rev-parse", "--git-dir"])) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/index");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let compiler = run(Command::new(rustc).arg("--version")).unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    let mut build = vec![];
    if let Some(c) = commit {
        build.push(format!("commit {c}{}", if dirty { "+changes" } else { "" }));
    }
    build.push(target);
    build.push(compiler);
    println!("cargo:rustc-env=BONSAI_BUILD={}", build.join(", "));
}
