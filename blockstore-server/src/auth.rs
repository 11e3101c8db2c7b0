//! Bearer tokens with roles, and what each route needs.
//!
//! Token file syntax (docs/API.md): one `ROLE TOKEN` per line, role `read`, `write` or
//! `admin`; blank lines and lines whose first non-blank character is `#` are comments. A
//! `#` anywhere else is part of the token — there are no trailing comments, so a token is
//! never silently cut short. Tokens are compared as BLAKE3 digests, whose equality is
//! constant-time, and every entry is checked, so timing reveals nothing about a token.

use std::path::Path;

/// What a token may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Query, download, statistics, image list.
    Read,
    /// Also upload and register images.
    Write,
    /// Also forget images, collect garbage, check the store.
    Admin,
}

impl Role {
    /// The role's name in the token file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// What a route requires; every route declares one (see `routes.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health, version).
    Open,
    /// A token of at least this role (`read` routes are open under `--public-read`).
    Needs(Role),
}

/// The tokens the server accepts.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    entries: Vec<(blake3::Hash, Role)>,
}

fn parse_line(n: usize, line: &str) -> Result<Option<(blake3::Hash, Role)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (role, token) = (parts.next(), parts.next());
    let role = match role {
        Some("read") => Role::Read,
        Some("write") => Role::Write,
        Some("admin") => Role::Admin,
        other => {
            return Err(format!(
                "line {n}: role must be `read`, `write` or `admin`, got {:?}",
                other.unwrap_or("")
            ))
        }
    };
    let token = token.ok_or_else(|| format!("line {n}: missing token after role"))?;
    if token.len() < 16 {
        return Err(format!("line {n}: token shorter than 16 characters"));
    }
    if parts.next().is_some() {
        return Err(format!(
            "line {n}: expected `ROLE TOKEN` (comments must be on their own line)"
        ));
    }
    Ok(Some((blake3::hash(token.as_bytes()), role)))
}

impl Tokens {
    /// Parses a token file; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            entries.extend(parse_line(n + 1, line)?);
        }
        if entries.is_empty() {
            return Err("no tokens in token file".into());
        }
        Ok(Tokens { entries })
    }

    /// Reads a token file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The role of a presented token, if any.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let presented = blake3::hash(token.as_bytes());
        let mut found = None;
        for (digest, role) in &self.entries {
            if *digest == presented {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

/// The token in an `Authorization` header value: scheme `Bearer`, matched without regard
/// to case (RFC 6750 / RFC 9110), then one or more spaces.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let t = Tokens::parse(
            "# comment\n  # indented comment\nread aaaaaaaaaaaaaaaa\nwrite bbbbbbbbbbbbbbbb\n\nadmin cccc#cccccccccccc\n",
        )
        .unwrap();
        assert_eq!(t.role_of("aaaaaaaaaaaaaaaa"), Some(Role::Read));
        assert_eq!(t.role_of("bbbbbbbbbbbbbbbb"), Some(Role::Write));
        assert_eq!(
            t.role_of("cccc#cccccccccccc"),
            Some(Role::Admin),
            "# is part of a token"
        );
        assert_eq!(t.role_of("cccc"), None);
        assert_eq!(t.role_of("dddddddddddddddd"), None);
        assert!(Tokens::parse("root xxxxxxxxxxxxxxxxxxx").is_err());
        assert!(Tokens::parse("read short").is_err());
        assert!(Tokens::parse("").is_err());
        let trailing = Tokens::parse("read aaaaaaaaaaaaaaaa # mine").unwrap_err();
        assert!(
            trailing.contains("line 1") && trailing.contains("own line"),
            "{trailing}"
        );
        assert!(Role::Read < Role::Write && Role::Write < Role::Admin);
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
