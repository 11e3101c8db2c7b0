//! `bonsai completions SHELL` and `bonsai man DIR`: shell completion scripts and man pages,
//! generated from the same definitions as `--help`, so they never drift from the commands.

use crate::args::{Cli, CompletionsArgs, ManArgs};
use anyhow::Context;
use clap::CommandFactory;

/// Prints the completion script for the shell asked for on stdout.
pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "bonsai", &mut out);
    Ok(())
}

/// Writes `bonsai.1` and one page per command (`bonsai-push.1`, `bonsai-recipe-show.1`, ...)
/// into the directory given; prints their names.
pub(crate) fn man(args: ManArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(crate::exit::Failed::new(
            crate::exit::Exit::Usage,
            format!("{} is not a directory; create it first", dir.display()),
        )
        .into());
    }
    let cmd = Cli::command();
    let mut written = Vec::new();
    write_pages(&cmd, "bonsai", dir, &mut written)?;
    for name in written {
        println!("{}", dir.join(name).display());
    }
    Ok(())
}

/// The page of `cmd` (named `name`), then those of its subcommands, depth first.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut Vec<String>,
) -> anyhow::Result<()> {
    let file = format!("{name}.1");
    // clap names are 'static; a page name lives as long as this short command anyway
    let page = cmd
        .clone()
        .name(&*Box::leak(name.to_string().into_boxed_str()));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page).render(&mut bytes)?;
    let path = dir.join(&file);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
