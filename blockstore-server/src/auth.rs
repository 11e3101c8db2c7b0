//! Bearer tokens with roles. The token file has one `ROLE TOKEN` per line (`read`,
//! `write` or `admin`; `#` starts a comment). Tokens are compared as BLAKE3 digests, whose equality is
//! constant-time, and every entry is checked, so timing reveals nothing about a token.

use std::path::Path;

/// What a token may do. Each role implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Query, download, statistics.
    Read,
    /// Also upload and register images, keep sealed recipes.
    Write,
    /// Also operate the store: forget images, gc, check.
    Admin,
}

/// The tokens the server accepts.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    entries: Vec<(blake3::Hash, Role)>,
}

impl Tokens {
    /// Parses a token file; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (role, token) = (parts.next(), parts.next());
            let role = match role {
                Some("read") => Role::Read,
                Some("write") => Role::Write,
                Some("admin") => Role::Admin,
                other => {
                    return Err(format!(
                        "line {}: role must be `read`, `write` or `admin`, got {:?}",
                        n + 1,
                        other.unwrap_or("")
                    ))
                }
            };
            let token = token.ok_or_else(|| format!("line {}: missing token after role", n + 1))?;
            if token.len() < 16 {
                return Err(format!("line {}: token shorter than 16 characters", n + 1));
            }
            if parts.next().is_some() {
                return Err(format!("line {}: expected `ROLE TOKEN`", n + 1));
            }
            entries.push((blake3::hash(token.as_bytes()), role));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let t = Tokens::parse("# comment\nread aaaaaaaaaaaaaaaa\nwrite bbbbbbbbbbbbbbbb # admin\n")
            .unwrap();
        assert_eq!(t.role_of("aaaaaaaaaaaaaaaa"), Some(Role::Read));
        assert_eq!(t.role_of("bbbbbbbbbbbbbbbb"), Some(Role::Write));
        assert_eq!(t.role_of("cccccccccccccccc"), None);
        assert_eq!(
            Tokens::parse("admin xxxxxxxxxxxxxxxxxxx")
                .unwrap()
                .role_of("xxxxxxxxxxxxxxxxxxx"),
            Some(Role::Admin)
        );
        assert!(Tokens::parse("root xxxxxxxxxxxxxxxxxxx").is_err());
        assert!(Tokens::parse("read short").is_err());
        assert!(Tokens::parse("").is_err());
    }
}
