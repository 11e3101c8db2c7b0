//! Bearer tokens with roles and namespace scopes, and what each route needs.
//!
//! Token file syntax (docs/API.md): one `ROLE TOKEN [ns=NS,…] [label=WHO]` per line, role
//! `read`, `write` or `admin`; blank lines and lines whose first non-blank character is `#`
//! are comments. A `#` anywhere else is part of the token — there are no trailing
//! comments, so a token is never silently cut short. `ns=` limits the token to image
//! names in those namespaces (and below); without it the token covers every namespace.
//! Blocks are global: scopes limit names (registering, listing, sealed recipes,
//! forgetting), never which blocks exist. `label=` names the token in `bonsai images`
//! (default: a fingerprint of the token). Tokens are compared as BLAKE3 digests, whose
//! equality is constant-time, and every entry is checked, so timing reveals nothing about
//! a token.

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
    /// A page for browsers (the dashboard): a read token, which may also come as the
    /// password of HTTP Basic authentication because a browser cannot send a bearer
    /// header to a page it navigates to; a refusal asks for Basic credentials. Open
    /// under `--public-read`.
    Page,
}

/// Who is asking, as the routes see it (an extension of every authorized request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What it may do.
    pub role: Role,
    /// The namespaces its names must lie in; `None` for every namespace.
    pub namespaces: Option<Vec<String>>,
    /// How versions it registers record it: its label or `token:FINGERPRINT`.
    pub by: String,
}

impl Caller {
    /// Everyone, on a store without tokens.
    pub fn anonymous() -> Self {
        Caller {
            role: Role::Admin,
            namespaces: None,
            by: "anonymous".into(),
        }
    }

    /// A reader without a token, under `--public-read`.
    pub fn public() -> Self {
        Caller {
            role: Role::Read,
            namespaces: None,
            by: "public".into(),
        }
    }

    /// Whether image `name` lies in this caller's namespaces.
    pub fn covers(&self, name: &str) -> bool {
        match &self.namespaces {
            None => true,
            Some(list) => list
                .iter()
                .any(|ns| bonsai_core::name::in_namespace(name, ns)),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    digest: blake3::Hash,
    role: Role,
    namespaces: Option<Vec<String>>,
    label: Option<String>,
}

/// The tokens the server accepts.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    entries: Vec<Entry>,
}

fn parse_role(n: usize, role: Option<&str>) -> Result<Role, String> {
    match role {
        Some("read") => Ok(Role::Read),
        Some("write") => Ok(Role::Write),
        Some("admin") => Ok(Role::Admin),
        other => Err(format!(
            "line {n}: role must be `read`, `write` or `admin`, got {:?}",
            other.unwrap_or("")
        )),
    }
}

fn parse_line(n: usize, line: &str) -> Result<Option<Entry>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let role = parse_role(n, parts.next())?;
    let token = parts
        .next()
        .ok_or_else(|| format!("line {n}: missing token after role"))?;
    if token.len() < 16 {
        return Err(format!("line {n}: token shorter than 16 characters"));
    }
    let mut entry = Entry {
        digest: blake3::hash(token.as_bytes()),
        role,
        namespaces: None,
        label: None,
    };
    for field in parts {
        match field.split_once('=') {
            Some(("ns", list)) => entry.namespaces = Some(parse_namespaces(n, list)?),
            Some(("label", l)) if !l.is_empty() => entry.label = Some(l.to_string()),
            _ => {
                return Err(format!(
                    "line {n}: expected `ROLE TOKEN [ns=NS,…] [label=WHO]`, got {field:?} \
                     (comments must be on their own line)"
                ))
            }
        }
    }
    Ok(Some(entry))
}

fn parse_namespaces(n: usize, list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(|ns| match bonsai_core::name::name_problem(ns) {
            None => Ok(ns.to_string()),
            Some(p) => Err(format!("line {n}: namespace {ns:?}: {p}")),
        })
        .collect()
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
        self.caller(token).map(|c| c.role)
    }

    /// Who a presented token is, if it is one of ours (the highest-role line wins).
    pub fn caller(&self, token: &str) -> Option<Caller> {
        let presented = blake3::hash(token.as_bytes());
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if e.digest == presented && found.is_none_or(|f| e.role > f.role) {
                found = Some(e);
            }
        }
        found.map(|e| Caller {
            role: e.role,
            namespaces: e.namespaces.clone(),
            by: e
                .label
                .clone()
                .unwrap_or_else(|| format!("token:{}", &e.digest.to_hex()[..8])),
        })
    }
}

/// The password of an `Authorization: Basic …` header (the user name is ignored): how a
/// browser presents a token to [`Access::Page`] routes.
pub(crate) fn basic_password(header: &str) -> Option<String> {
    use base64::Engine;
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_string())
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
    fn basic_password_is_the_token() {
        // "me:s3cret-token" in base64
        assert_eq!(
            basic_password("Basic bWU6czNjcmV0LXRva2Vu").as_deref(),
            Some("s3cret-token")
        );
        assert_eq!(basic_password("Basic !!!"), None);
        assert_eq!(basic_password("Bearer abc"), None);
    }

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
        let scoped = Tokens::parse("write eeeeeeeeeeeeeeee ns=team-a,lab/x label=ci").unwrap();
        let c = scoped.caller("eeeeeeeeeeeeeeee").unwrap();
        assert_eq!(c.by, "ci");
        assert!(c.covers("team-a/vm") && c.covers("lab/x/y/vm"));
        assert!(!c.covers("vm") && !c.covers("team-b/vm") && !c.covers("lab/vm"));
        let unlabelled = t.caller("bbbbbbbbbbbbbbbb").unwrap();
        assert!(unlabelled.by.starts_with("token:") && unlabelled.covers("any/name"));
        assert!(
            !unlabelled.by.contains("bbbb"),
            "the fingerprint is not the token"
        );
        assert!(Tokens::parse("write eeeeeeeeeeeeeeee ns=a@b").is_err());
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
