//! `bonsai demo`: two related synthetic VM images through an embedded store.
//!
//! The images share an "operating system" (text-like and binary-like data), differ in an
//! "update" inserted into the OS and in their "user data", and are mostly zeros — like
//! real VMs. The second push should cost a fraction of the first.

use crate::args::{Cli, Command, DemoArgs};
use crate::store::{Access, StoreSpec};
use anyhow::Context;
use bonsai_core::stats::human_bytes;
use clap::Parser;
use std::io::Write;
use std::path::Path;

const MIB: usize = 1024 * 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64: fast, deterministic, good enough for synthetic data
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// Compressible "text": words from a small vocabulary.
    fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "kernel", "module", "systemd", "libc", "config", "usr", "lib", "share", "python3",
            "package", "version", "debian", "install", "service", "network", "=", "\n", "/",
        ];
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            v.extend_from_slice(WORDS[(self.next() % WORDS.len() as u64) as usize].as_bytes());
            v.push(b' ');
        }
        v.truncate(n);
        v
    }
}

/// The shared "OS": alternating text and binary files.
fn os(rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..24 {
        if i % 2 == 0 {
            v.extend(rng.text(MIB));
        } else {
            v.extend(rng.bytes(MIB));
        }
    }
    v
}

fn write_image(path: &Path, size: usize, parts: &[(usize, &[u8])]) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size as u64)?;
    use std::os::unix::fs::FileExt;
    for (off, data) in parts {
        f.write_all_at(data, *off as u64)?;
    }
    f.sync_all()?;
    Ok(())
}

/// The two images, written into `dir`: vm2 is vm1 with an OS update and other user data.
fn make_images(dir: &Path) -> anyhow::Result<()> {
    let mut rng = Rng(2026);
    let base = os(&mut rng);
    let update = rng.text(MIB);
    let data1 = rng.bytes(6 * MIB);
    let data2 = rng.bytes(3 * MIB);
    // vm2's OS has an update inserted in the middle: later files shift by 1 MiB.
    let mut os2 = base[..10 * MIB].to_vec();
    os2.extend_from_slice(&update);
    os2.extend_from_slice(&base[10 * MIB..]);
    let vm1 = dir.join("vm1.raw");
    let vm2 = dir.join("vm2.raw");
    write_image(&vm1, 128 * MIB, &[(MIB, &base), (64 * MIB, &data1)])?;
    write_image(&vm2, 128 * MIB, &[(MIB, &os2), (64 * MIB, &data2)])
}

/// A subcommand's arguments as the parser makes them, so that options added to a command
/// never need a change here.
fn parse(args: &[&str]) -> anyhow::Result<Command> {
    Ok(Cli::try_parse_from(std::iter::once("bonsai").chain(args.iter().copied()))?.command)
}

/// Pushes vm1 then vm2 and prints a row of figures for each.
fn push_both(out: &mut dyn Write, dir: &Path, store: &str, quiet: bool) -> anyhow::Result<()> {
    writeln!(
        out,
        "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "image", "logical", "data", "known", "sent", "overall"
    )?;
    for name in ["vm1", "vm2"] {
        let image = dir.join(format!("{name}.raw")).display().to_string();
        let recipe = dir.join(format!("{name}.recipe")).display().to_string();
        let Command::Push(args) = parse(&[
            "push",
            &image,
            "--store",
            store,
            "-o",
            &recipe,
            "--name",
            name,
            "--force",
            "--no-cache",
        ])?
        else {
            unreachable!("parsed a push")
        };
        let r = crate::cmd::push::push(&args, quiet)?;
        writeln!(
            out,
            "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>7.1}x",
            name,
            human_bytes(r.logical_bytes),
            human_bytes(r.data_bytes),
            format!("{}/{}", r.known_chunks, r.unique_chunks),
            human_bytes(r.sent_bytes),
            r.dedup_ratio.unwrap_or(f64::INFINITY)
        )?;
    }
    Ok(())
}

/// Pulls vm2 back, checks it byte for byte and prints what it cost.
fn pull_back(out: &mut dyn Write, dir: &Path, store: &str, quiet: bool) -> anyhow::Result<()> {
    let pulled = dir.join("vm2.pulled.raw");
    let recipe = dir.join("vm2.recipe").display().to_string();
    let target = pulled.display().to_string();
    let Command::Pull(args) = parse(&[
        "pull",
        &recipe,
        "--store",
        store,
        "-o",
        &target,
        "--force",
        "--no-cache",
    ])?
    else {
        unreachable!("parsed a pull")
    };
    let p = crate::cmd::pull::pull(&args, quiet)?;
    let same = std::fs::read(dir.join("vm2.raw"))? == std::fs::read(&pulled)?;
    anyhow::ensure!(p.verified && same, "demo pull did not reproduce vm2");
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&pulled)?.blocks() * 512
    };
    writeln!(
        out,
        "\npulled vm2 back: {} blocks fetched ({}), every extent verified, byte-identical: {}",
        p.fetched_blocks,
        human_bytes(p.fetched_bytes),
        same
    )?;
    writeln!(
        out,
        "the pulled file is sparse: {} allocated for {} logical",
        human_bytes(allocated),
        human_bytes(p.logical_bytes)
    )?;
    Ok(())
}

/// Runs the command.
pub(crate) fn run(args: DemoArgs, quiet: bool) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut out = std::io::stdout();
    writeln!(out, "bonsai demo in {}", dir.display())?;
    writeln!(
        out,
        "building two 128 MiB VM images: a shared 24 MiB OS, an update, user data, zeros"
    )?;
    make_images(&dir)?;
    let store = dir.join("store");
    crate::store::init(&store)?;
    let store_arg = store.display().to_string();
    writeln!(out, "pushing both to an embedded store at {store_arg}\n")?;
    push_both(&mut out, &dir, &store_arg, quiet)?;
    pull_back(&mut out, &dir, &store_arg, quiet)?;
    let s = StoreSpec::Dir(store)
        .open(Access::Existing, &Default::default())?
        .stats()?;
    writeln!(
        out,
        "store: {} blocks, {} stored for {} of images ({:.1}x overall)",
        s.blocks,
        human_bytes(s.stored_bytes),
        human_bytes(s.logical_bytes),
        s.dedup_ratio
    )?;
    Ok(())
}
