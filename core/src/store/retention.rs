//! Which versions a retention policy forgets (`bonsai forget NAME --keep-last N
//! --keep-within 30d`, as restic and borg prune). Pure: the client lists the versions,
//! chooses here, and asks the store to forget exactly those — a version pushed meanwhile
//! is never touched.

use super::ImageInfo;
use crate::name::VersionRef;
use std::time::Duration;

/// What to keep of each name; a version any rule keeps is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest N versions.
    pub keep_last: Option<u64>,
    /// Keep versions registered less than this long ago.
    pub keep_within: Option<Duration>,
}

impl Retention {
    /// Whether any rule is set (a policy without rules would forget everything).
    pub fn is_set(&self) -> bool {
        self.keep_last.is_some() || self.keep_within.is_some()
    }
}

/// The versions of `name` among `versions` that `policy` does not keep, oldest first.
pub fn to_forget(
    versions: &[ImageInfo],
    name: &str,
    policy: &Retention,
    now: i64,
) -> Vec<VersionRef> {
    let mut mine: Vec<&ImageInfo> = versions.iter().filter(|v| v.name == name).collect();
    mine.sort_by_key(|v| std::cmp::Reverse(v.version));
    let within = policy
        .keep_within
        .map(|d| now.saturating_sub(d.as_secs().min(i64::MAX as u64) as i64));
    let mut out: Vec<VersionRef> = mine
        .iter()
        .enumerate()
        .filter(|(rank, v)| {
            let last = policy.keep_last.is_some_and(|n| (*rank as u64) < n);
            let recent = within.is_some_and(|cut| v.registered > cut);
            !(last || recent)
        })
        .map(|(_, v)| VersionRef::exact(&v.name, v.version))
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, version: u64, registered: i64) -> ImageInfo {
        ImageInfo {
            name: name.into(),
            version,
            registered,
            ..Default::default()
        }
    }

    #[test]
    fn keep_last_and_within_combine() {
        let day = 86_400;
        let all = vec![
            v("vm", 1, 0),
            v("vm", 2, day),
            v("vm", 3, 5 * day),
            v("vm", 4, 9 * day),
            v("other", 1, 0),
        ];
        let now = 10 * day;
        let last2 = Retention {
            keep_last: Some(2),
            keep_within: None,
        };
        let names = |r: Vec<VersionRef>| r.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(names(to_forget(&all, "vm", &last2, now)), ["vm@1", "vm@2"]);
        let week = Retention {
            keep_last: None,
            keep_within: Some(Duration::from_secs(7 * day as u64)),
        };
        assert_eq!(names(to_forget(&all, "vm", &week, now)), ["vm@1", "vm@2"]);
        let both = Retention {
            keep_last: Some(1),
            keep_within: Some(Duration::from_secs(6 * day as u64)),
        };
        assert_eq!(names(to_forget(&all, "vm", &both, now)), ["vm@1", "vm@2"]);
        let one = Retention {
            keep_last: Some(1),
            keep_within: None,
        };
        assert_eq!(
            names(to_forget(&all, "vm", &one, now)),
            ["vm@1", "vm@2", "vm@3"]
        );
        assert!(to_forget(&all, "none", &one, now).is_empty());
    }
}
