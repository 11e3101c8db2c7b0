//! The config file: defaults for the options a user gives on every command (`store`,
//! `token_file`, `ca_file`), so `bonsai push vm.raw` needs no `--store` on a machine set
//! up once.
//!
//! Where: `$BONSAI_CONFIG`, else `$XDG_CONFIG_HOME/bonsai/config.toml`, else
//! `~/.config/bonsai/config.toml`; a missing file is no config. Precedence: a flag, then
//! the environment variable (`BONSAI_STORE`, `BONSAI_TOKEN_FILE`, `BONSAI_CA_FILE`), then
//! the file — the file's values become those variables' defaults before the command line
//! is read. Read as strictly as it is documented: an unknown key or a value that is not a
//! string is a usage error naming the file.

use crate::exit::{Exit, Failed};
use std::path::PathBuf;

/// The keys, and the environment variable each one is the default of.
const KEYS: [(&str, &str); 3] = [
    ("store", "BONSAI_STORE"),
    ("token_file", "BONSAI_TOKEN_FILE"),
    ("ca_file", "BONSAI_CA_FILE"),
];

/// The config file's path, whether or not it exists; `None` without a home directory.
pub(crate) fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BONSAI_CONFIG").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("bonsai").join("config.toml"))
}

/// Reads the config file and sets each value as its environment variable's default.
/// Runs first in `main`, before any thread exists.
pub(crate) fn apply() -> Result<(), Failed> {
    let Some(path) = path() else {
        return Ok(());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Failed::new(
                Exit::LocalIo,
                format!("cannot read config file {}: {e}", path.display()),
            ))
        }
    };
    for (var, value) in parse(&text)
        .map_err(|e| Failed::new(Exit::Usage, format!("config file {}: {e}", path.display())))?
    {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
    Ok(())
}

/// The (variable, value) pairs a config file's text sets.
fn parse(text: &str) -> Result<Vec<(&'static str, String)>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_string() + &line_of(text, e.span()))?;
    let mut set = Vec::new();
    for (key, value) in table {
        let Some((_, var)) = KEYS.iter().find(|(k, _)| *k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            return Err(format!("unknown key `{key}` (known: {})", known.join(", ")));
        };
        let Some(v) = value.as_str() else {
            return Err(format!("`{key}` must be a string, e.g. {key} = \"...\""));
        };
        set.push((*var, expand_home(v)));
    }
    Ok(set)
}

/// " (line N)" for the byte range `span` of `text`.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}

/// A leading `~/` as the home directory, as a shell would (the file is not a shell).
fn expand_home(v: &str) -> String {
    match (v.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_variables_and_mistakes_are_named() {
        let set = parse("store = \"http://s:7412\"\nca_file = \"/etc/ca.pem\"\n").unwrap();
        assert_eq!(
            set,
            [
                ("BONSAI_CA_FILE", "/etc/ca.pem".to_string()),
                ("BONSAI_STORE", "http://s:7412".to_string())
            ]
        );
        let err = parse("stroe = \"x\"").unwrap_err();
        assert!(err.contains("unknown key `stroe`"), "{err}");
        let err = parse("store = 7412").unwrap_err();
        assert!(err.contains("must be a string"), "{err}");
        let err = parse("store = \"x\"\nca_file = \n").unwrap_err();
        assert!(err.contains("(line 2)"), "{err}");
    }
}
