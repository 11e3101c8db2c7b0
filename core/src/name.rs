//! Image names, namespaces and version references, checked the same way by the client and
//! the store (docs/API.md "Names").
//!
//! A name is `NAMESPACE/…/BASE`: up to 255 bytes of UTF-8, components separated by `/`,
//! none empty, `.` or `..`, no control characters and no `@` (which separates a version:
//! `team-a/web.raw@3`). A name without `/` lives in the root namespace. Tokens are scoped to
//! namespaces; blocks are global, so dedup crosses every namespace.

use std::fmt;

/// Longest image name, in bytes (the store hashes names on disk, so any legal name fits).
pub const MAX_NAME: usize = 255;

/// Why a name is not legal, in one line; `None` if it is.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("image name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Some(format!(
            "image name is {} bytes; the limit is {MAX_NAME}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!(
            "image name holds the control character {:?}",
            c.escape_default().to_string()
        ));
    }
    if name.contains('@') {
        return Some("image name may not contain '@' (it separates a version: NAME@3)".into());
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("image name has an empty, '.' or '..' component between '/'".into());
    }
    None
}

/// The namespace of a legal name: everything before its last `/` (`""` for the root).
pub fn namespace_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(ns, _)| ns)
}

/// Whether `name` lies in namespace `ns` or below it (`ns` = `""` holds every name).
pub fn in_namespace(name: &str, ns: &str) -> bool {
    ns.is_empty()
        || namespace_of(name) == ns
        || namespace_of(name)
            .strip_prefix(ns)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `NAME` (every version, or the latest for a pull) or `NAME@VERSION` (one version).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionRef {
    /// The image name.
    pub name: String,
    /// One version, when given.
    pub version: Option<u64>,
}

impl VersionRef {
    /// Parses `NAME` or `NAME@N` (N ≥ 1), checking the name.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, version) = match s.rsplit_once('@') {
            Some((n, v)) => {
                let v: u64 =
                    v.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                        format!("{s:?}: the version after '@' must be a number ≥ 1")
                    })?;
                (n, Some(v))
            }
            None => (s, None),
        };
        if let Some(p) = name_problem(name) {
            return Err(format!("{}: {p}", for_terminal(s)));
        }
        Ok(VersionRef {
            name: name.to_string(),
            version,
        })
    }

    /// One version of `name`.
    pub fn exact(name: &str, version: u64) -> Self {
        VersionRef {
            name: name.to_string(),
            version: Some(version),
        }
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A name (or any text a store sent) made safe for a terminal: control characters,
/// escape sequences and bidirectional overrides are shown escaped, never interpreted.
pub fn for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_and_illegal_names() {
        assert_eq!(name_problem("disk.raw"), None);
        assert_eq!(name_problem("team-a/web/disk.raw"), None);
        assert_eq!(name_problem(&"n".repeat(255)), None);
        for bad in [
            "",
            "a@b",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "./a",
            "a\u{1b}[2Jb",
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?} accepted");
        }
        assert!(name_problem(&"n".repeat(256)).unwrap().contains("255"));
    }

    #[test]
    fn namespaces_nest() {
        assert_eq!(namespace_of("a/b/c"), "a/b");
        assert_eq!(namespace_of("c"), "");
        assert!(in_namespace("a/b/c", "a"));
        assert!(in_namespace("a/b/c", "a/b"));
        assert!(!in_namespace("ab/c", "a"));
        assert!(
            !in_namespace("a", "a"),
            "a root-level name is not inside namespace a"
        );
        assert!(in_namespace("c", ""));
    }

    #[test]
    fn version_refs_round_trip() {
        let r = VersionRef::parse("team/vm@12").unwrap();
        assert_eq!((r.name.as_str(), r.version), ("team/vm", Some(12)));
        assert_eq!(r.to_string(), "team/vm@12");
        assert_eq!(VersionRef::parse("vm").unwrap().version, None);
        for bad in ["vm@", "vm@0", "vm@x", "@3", "a@b@3"] {
            assert!(VersionRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn terminal_escapes() {
        assert_eq!(for_terminal("vm\u{1b}[31m"), "vm\\u{1b}[31m");
        assert_eq!(for_terminal("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(for_terminal("plain/ünïcode"), "plain/ünïcode");
    }
}
