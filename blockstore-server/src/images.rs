//! Image versions as operators see them, registering new ones, forgetting them, and the
//! sealed recipes the store keeps for their owners (objects of the backend beside the
//! manifests: they outlive any one server's index).
//!
//! Registration: the manifest goes to the backend first, create-only under its version's
//! key (a version that exists is never replaced; a collision with another server takes the
//! next number), then to the index, whose transaction re-checks every block against gc.
//! "Bytes only it holds" is what forgetting the version and collecting garbage would free.

use crate::backend::Put;
use crate::ingest::{StorageError, Store};
use crate::versions::label;
use bonsai_core::name::VersionRef;
use bonsai_core::store::manifest::{self, VersionHeader};
use bonsai_core::store::{AdminStore, ImageInfo, Registered};
use bonsai_core::BlockId;

/// Most version numbers tried when other servers take them first.
const VERSION_TRIES: u64 = 64;

/// A version to register: what the client sent and who it is.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    /// Image name.
    pub name: &'a str,
    /// Virtual size.
    pub logical_bytes: u64,
    /// Distinct block ids.
    pub ids: &'a [BlockId],
    /// Bytes of holes, if known.
    pub zero_bytes: Option<u64>,
    /// The recipe's image hash (hex), if sent.
    pub image_hash: Option<&'a str>,
    /// The caller (token label or fingerprint).
    pub by: &'a str,
}

/// What registering an exact version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exact {
    /// The version is new here.
    Created,
    /// The same version, with the same blocks, was registered already.
    Existed,
    /// Another image holds that version number here; nothing was changed.
    Taken,
    /// The store does not hold this block; nothing was registered.
    Missing(BlockId),
}

impl Store {
    /// Registered versions with their figures, and whether a sealed recipe is kept for each.
    pub fn image_infos(&self) -> Result<Vec<ImageInfo>, StorageError> {
        if let Some(up) = self.upstream() {
            return up.client().images().map_err(StorageError::Forwarded);
        }
        self.learn_versions()?;
        let mut infos = self.index().image_infos()?;
        let sealed: std::collections::HashSet<String> =
            self.backend().list_sealed_recipes()?.into_iter().collect();
        for info in &mut infos {
            info.sealed_recipe = sealed.contains(&manifest::key(&info.name, info.version));
        }
        Ok(infos)
    }

    /// Registers a new version; `Err(id)` names the first block the store does not hold
    /// (nothing is registered then).
    pub fn register_version(
        &self,
        v: &NewVersion<'_>,
    ) -> Result<Result<Registered, BlockId>, StorageError> {
        if let Some(up) = self.upstream() {
            let reg = up.register(v)?;
            if let Ok(r) = &reg {
                self.note_registrant(v.name, r.version, v.by)?;
            }
            return Ok(reg);
        }
        if let Some(id) = self.missing_exact(v.ids)?.first() {
            return Ok(Err(*id));
        }
        let _one = self.registering.lock().unwrap_or_else(|p| p.into_inner());
        self.learn_versions()?;
        let mut header = crate::versions::header_now(v.name, 0, v.logical_bytes, v.by);
        header.zero_bytes = v.zero_bytes;
        header.image_hash = v.image_hash.map(str::to_string);
        let first = self.index().next_version(v.name)?;
        let key = self.write_manifest(&mut header, first, v.ids)?;
        if let Some(id) = self.settle_shared(&key, v.ids)? {
            return Ok(Err(id));
        }
        match self.index().register_version(&header, v.ids)? {
            Ok(earlier) => Ok(Ok(Registered {
                version: header.version,
                earlier_versions: earlier,
            })),
            Err(id) => {
                // gc took a block meanwhile: the version must not exist anywhere
                self.backend().delete_manifest(&key)?;
                Ok(Err(id))
            }
        }
    }

    /// On a shared bucket, after the manifest under `key` is durable: the first block a
    /// gc sweep through any server may delete, or that is gone (the manifest is then
    /// removed again and the registration refused).
    fn settle_shared(&self, key: &str, ids: &[BlockId]) -> Result<Option<BlockId>, StorageError> {
        let Some(gc) = self.backend().shared_gc() else {
            return Ok(None);
        };
        let Some(id) = gc.settle_registration(ids)? else {
            return Ok(None);
        };
        self.backend().delete_manifest(key)?;
        let sizes = self.index().sizes_of(&[id])?;
        self.index().drop_blocks(&[(id, sizes[0])])?;
        Ok(Some(id))
    }

    /// Writes the manifest create-only at the first free version from `first`; sets the
    /// header's version and returns its key.
    fn write_manifest(
        &self,
        header: &mut VersionHeader,
        first: u64,
        ids: &[BlockId],
    ) -> Result<String, StorageError> {
        for version in first..first + VERSION_TRIES {
            header.version = version;
            let key = manifest::key(&header.name, version);
            if self
                .backend()
                .put_manifest(&key, &manifest::encode(header, ids))?
                == Put::Written
            {
                return Ok(key);
            }
        }
        Err(StorageError::Unsupported(
            "too many versions of this name are being registered at once; retry",
        ))
    }

    /// Registers `v` as exactly `version` (a copy of another store's version, which its
    /// sealed recipe is bound to). The same version with the same blocks already here is
    /// [`Exact::Existed`]; another manifest under that number is [`Exact::Taken`]: a copy
    /// is never renumbered and nothing registered is replaced.
    pub fn register_exact(&self, v: &NewVersion<'_>, version: u64) -> Result<Exact, StorageError> {
        if let Some(up) = self.upstream() {
            let done = up.register_exact(v, version)?;
            if done == Exact::Created {
                self.note_registrant(v.name, version, v.by)?;
            }
            return Ok(done);
        }
        if let Some(id) = self.missing_exact(v.ids)?.first() {
            return Ok(Exact::Missing(*id));
        }
        let _one = self.registering.lock().unwrap_or_else(|p| p.into_inner());
        let key = manifest::key(v.name, version);
        let mut header = crate::versions::header_now(v.name, version, v.logical_bytes, v.by);
        header.zero_bytes = v.zero_bytes;
        header.image_hash = v.image_hash.map(str::to_string);
        if self
            .backend()
            .put_manifest(&key, &manifest::encode(&header, v.ids))?
            == Put::Present
        {
            return self.already_there(&key, v);
        }
        if let Some(id) = self.settle_shared(&key, v.ids)? {
            return Ok(Exact::Missing(id));
        }
        match self.index().register_version(&header, v.ids)? {
            Ok(_) => Ok(Exact::Created),
            Err(id) => {
                self.backend().delete_manifest(&key)?;
                Ok(Exact::Missing(id))
            }
        }
    }

    /// A manifest was already kept under `key`: the same version if it holds the same
    /// image (then indexed here too, if another server over the bucket wrote it).
    fn already_there(&self, key: &str, v: &NewVersion<'_>) -> Result<Exact, StorageError> {
        let kept = self.backend().get_manifest(key)?;
        let Some((header, ids)) = kept.and_then(|b| manifest::parse(key, &b)) else {
            return Ok(Exact::Taken);
        };
        let same = header.logical_bytes == v.logical_bytes
            && header.image_hash.as_deref() == v.image_hash
            && ids == v.ids;
        if !same {
            return Ok(Exact::Taken);
        }
        if self
            .index()
            .registrant(&header.name, header.version)?
            .is_none()
        {
            if let Err(id) = self.index().register_version(&header, &ids)? {
                return Ok(Exact::Missing(id));
            }
        }
        Ok(Exact::Existed)
    }

    /// Registers a version as an unnamed caller (tests and tools).
    pub fn register(
        &self,
        name: &str,
        logical: u64,
        ids: &[BlockId],
    ) -> Result<Option<BlockId>, StorageError> {
        let v = NewVersion {
            name,
            logical_bytes: logical,
            ids,
            zero_bytes: None,
            image_hash: None,
            by: "local",
        };
        Ok(self.register_version(&v)?.err())
    }

    /// Forgets `NAME@V`, or every version of `NAME`; returns the versions forgotten. Each
    /// leaves the index first (one transaction: on a full disk it fails whole and nothing
    /// changed), then its manifest and sealed recipe leave the backend. Should that fail,
    /// the version is no longer listed and a rebuild would bring it back: nothing is lost.
    pub fn forget(&self, target: &VersionRef) -> Result<Vec<VersionRef>, StorageError> {
        if self.upstream().is_some() {
            return Err(StorageError::Unsupported(crate::cache::NO_ADMIN));
        }
        self.learn_versions()?;
        let mut gone = Vec::new();
        for version in self.index().versions_of(&target.name, target.version)? {
            if self.index().forget_version(&target.name, version)? {
                let key = manifest::key(&target.name, version);
                self.backend().delete_manifest(&key)?;
                self.backend().delete_sealed_recipe(&key)?;
                self.backend().delete_profile(&key)?;
                gone.push(VersionRef::exact(&target.name, version));
            }
        }
        Ok(gone)
    }

    /// Keeps a sealed recipe for a registered version, once. Only the caller who
    /// registered the version may give it one; the same bytes again are accepted, other
    /// bytes are refused — no token can replace a sealed recipe.
    pub fn put_sealed_recipe(
        &self,
        name: &str,
        version: u64,
        by: &str,
        sealed: &[u8],
    ) -> Result<(), StorageError> {
        if let Some(up) = self.upstream() {
            let label = label(name, version);
            if self.cache_registrant(name, version)?.as_deref() != Some(by) {
                return Err(StorageError::Forbidden(format!(
                    "{label} was not registered by this token through this cache; only its registrant may keep its sealed recipe"
                )));
            }
            return up
                .client()
                .put_sealed_recipe(&label, sealed)
                .map_err(StorageError::Forwarded);
        }
        let vlabel = label(name, version);
        let owner = match self.index().registrant(name, version)? {
            Some(o) => o,
            None => self.shared_registrant(name, version)?,
        };
        if owner != by {
            return Err(StorageError::Forbidden(format!(
                "{vlabel} was registered by another token; only its registrant may keep its sealed recipe"
            )));
        }
        let key = manifest::key(name, version);
        if self.backend().put_sealed_recipe(&key, sealed)? == Put::Present
            && self.backend().get_sealed_recipe(&key)?.as_deref() != Some(sealed)
        {
            return Err(StorageError::Conflict(format!(
                "a sealed recipe is already kept for {vlabel}; it is never replaced (push a new version)"
            )));
        }
        Ok(())
    }

    /// Who registered a version another server over the same bucket registered.
    fn shared_registrant(&self, name: &str, version: u64) -> Result<String, StorageError> {
        let key = manifest::key(name, version);
        let found = match self.backend().is_shared() {
            true => self.backend().get_manifest(&key)?,
            false => None,
        };
        found
            .and_then(|b| manifest::parse(&key, &b))
            .map(|(h, _)| h.by)
            .ok_or_else(|| StorageError::NoImage(label(name, version)))
    }

    /// Keeps the boot profile of a registered version, once (the first boot recorded
    /// wins; a later one is accepted and dropped). Any writer may give it: a profile only
    /// orders prefetching, it never decides a byte. Callers check its format first
    /// (`bonsai_core::export::profile::decode`). Returns whether it was newly kept.
    pub fn put_profile(
        &self,
        name: &str,
        version: u64,
        profile: &[u8],
    ) -> Result<bool, StorageError> {
        if let Some(up) = self.upstream() {
            let label = label(name, version);
            return up
                .client()
                .put_profile(&label, profile)
                .map_err(StorageError::Forwarded);
        }
        if self.index().registrant(name, version)?.is_none() {
            self.shared_registrant(name, version)?;
        }
        let key = manifest::key(name, version);
        Ok(self.backend().put_profile(&key, profile)? == Put::Written)
    }

    /// The boot profile kept for a version.
    pub fn profile(&self, name: &str, version: u64) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(up) = self.upstream() {
            return up
                .client()
                .get_profile(&label(name, version))
                .map_err(StorageError::Forwarded);
        }
        Ok(self.backend().get_profile(&manifest::key(name, version))?)
    }

    /// The manifest object of a registered version, as the backend keeps it.
    pub fn manifest(&self, name: &str, version: u64) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(up) = self.upstream() {
            return up
                .client()
                .get_manifest(&label(name, version))
                .map_err(StorageError::Forwarded);
        }
        if self.index().registrant(name, version)?.is_none() {
            return Ok(None);
        }
        Ok(self.backend().get_manifest(&manifest::key(name, version))?)
    }

    /// The sealed recipe kept for a version.
    pub fn sealed_recipe(&self, name: &str, version: u64) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(up) = self.upstream() {
            return up
                .client()
                .get_sealed_recipe(&label(name, version))
                .map_err(StorageError::Forwarded);
        }
        Ok(self
            .backend()
            .get_sealed_recipe(&manifest::key(name, version))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    fn name_ref(s: &str) -> VersionRef {
        VersionRef::parse(s).unwrap()
    }

    #[test]
    fn versions_unique_bytes_sealed_recipes_and_forget() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let b: Vec<_> = ["shared", "only a", "only b"]
            .iter()
            .map(|t| Encoder::new().encode(&Convergence::public(), t.as_bytes()))
            .collect();
        let items: Vec<_> = b.iter().map(|x| (x.id, &x.object[..])).collect();
        s.put_many(&items).unwrap();
        s.register("a", 10, &[b[0].id, b[1].id]).unwrap();
        s.register("b", 20, &[b[0].id, b[2].id]).unwrap();
        // an empty manifest under "a" is a harmless new version, not a replacement
        s.register("a", 0, &[]).unwrap();
        s.put_sealed_recipe("a", 1, "local", b"sealed").unwrap();
        s.put_sealed_recipe("a", 1, "local", b"sealed").unwrap();
        let e = s.put_sealed_recipe("a", 1, "local", b"junk").unwrap_err();
        assert!(e.to_string().contains("never replaced"), "{e}");
        let e = s
            .put_sealed_recipe("a", 2, "token:other", b"x")
            .unwrap_err();
        assert!(e.to_string().contains("another token"), "{e}");
        let e = s.put_sealed_recipe("nobody", 1, "local", b"x").unwrap_err();
        assert!(e.to_string().contains("push it before"), "{e}");
        let list = s.image_infos().unwrap();
        let names: Vec<_> = list.iter().map(|i| i.version_ref().to_string()).collect();
        assert_eq!(names, ["a@1", "a@2", "b@1"]);
        assert_eq!(list[0].unique_bytes, b[1].object.len() as u64);
        assert!(list[0].sealed_recipe && !list[1].sealed_recipe);
        assert_eq!(s.forget(&name_ref("a@1")).unwrap(), [name_ref("a@1")]);
        assert!(s.forget(&name_ref("a@1")).unwrap().is_empty());
        assert_eq!(s.sealed_recipe("a", 1).unwrap(), None);
        assert_eq!(s.forget(&name_ref("a")).unwrap(), [name_ref("a@2")]);
        let list = s.image_infos().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            list[0].unique_bytes,
            (b[0].object.len() + b[2].object.len()) as u64
        );
        // numbers are never reused while a version of the name remains in the backend
        assert_eq!(s.index().next_version("b").unwrap(), 2);
    }
}
