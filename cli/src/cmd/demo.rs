//! `bonsai demo`: two related synthetic VM images through an embedded store.
//!
//! The images share an "operating system" (text-like and binary-like data), differ in an
//! "update" inserted into the OS and in their "user data", and are mostly zeros — like
//! real VMs. The second push should cost a fraction of the first.

use crate::args::{ChunkArgs, DemoArgs, PullArgs, PushArgs, SecretArgs, StoreArgs};
use anyhow::Context;
use indicatif::HumanBytes;
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

/// Runs the command.
pub fn run(args: DemoArgs, quiet: bool) -> anyhow::Result<()> {
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
    write_image(&vm2, 128 * MIB, &[(MIB, &os2), (64 * MIB, &data2)])?;

    let store = dir.join("store");
    let store_args = StoreArgs {
        store: store.display().to_string(),
        token_file: None,
        ca_file: None,
    };
    writeln!(
        out,
        "pushing both to an embedded store at {}\n",
        store.display()
    )?;
    writeln!(
        out,
        "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "image", "logical", "data", "known", "sent", "dedup"
    )?;
    for (vm, name) in [(&vm1, "vm1"), (&vm2, "vm2")] {
        let r = crate::cmd::push::push(
            &PushArgs {
                image: vm.clone(),
                format: None,
                store: store_args.clone(),
                output: Some(dir.join(format!("{name}.recipe"))),
                name: Some(name.into()),
                json: false,
                secret: SecretArgs { secret_file: None },
                chunk: ChunkArgs {
                    chunk_kib: 64,
                    fixed: false,
                },
                no_cache: true,
                keep_recipe: false,
                recipe_key: crate::args::RecipeKeyArgs { recipe_key: None },
            },
            quiet,
        )?;
        writeln!(
            out,
            "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>7.1}x",
            name,
            HumanBytes(r.logical_bytes).to_string(),
            HumanBytes(r.data_bytes).to_string(),
            format!("{}/{}", r.known_chunks, r.unique_chunks),
            HumanBytes(r.sent_bytes).to_string(),
            r.dedup_ratio.unwrap_or(f64::INFINITY)
        )?;
    }
    let pulled = dir.join("vm2.pulled.raw");
    let p = crate::cmd::pull::pull(
        &PullArgs {
            recipe: dir.join("vm2.recipe"),
            store: store_args,
            output: pulled.clone(),
            output_format: crate::args::OutputFormat::Raw,
            no_cache: true,
            in_place: false,
            discard_holes: false,
            seed: vec![],
            json: false,
            secret: SecretArgs { secret_file: None },
            recipe_key: crate::args::RecipeKeyArgs { recipe_key: None },
        },
        quiet,
    )?;
    let same = std::fs::read(&vm2)? == std::fs::read(&pulled)?;
    anyhow::ensure!(p.verified && same, "demo pull did not reproduce vm2");
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&pulled)?.blocks() * 512
    };
    writeln!(
        out,
        "\npulled vm2 back: {} blocks fetched ({}), whole-image BLAKE3 verified, byte-identical: {}",
        p.fetched_blocks,
        HumanBytes(p.fetched_bytes),
        same
    )?;
    writeln!(
        out,
        "the pulled file is sparse: {} allocated for {} logical",
        HumanBytes(allocated),
        HumanBytes(p.logical_bytes)
    )?;
    let s = bonsai_blockstore::open_store(&store.display().to_string(), None)?.stats()?;
    writeln!(
        out,
        "store: {} blocks, {} stored for {} of images ({:.1}x)",
        s.blocks,
        HumanBytes(s.stored_bytes),
        HumanBytes(s.logical_bytes),
        s.dedup_ratio
    )?;
    Ok(())
}
