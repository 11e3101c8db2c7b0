//! Every server over one bucket shows the same store: before it lists images, numbers a
//! new version, forgets one, or counts them, a server brings its index's versions in line
//! with the manifests in the bucket (one listing, one GET per version it has not seen).
//! A version another server registered is indexed with its blocks marked unverified
//! (trust.rs), as a rebuild does; one forgotten through another server leaves this index.

use crate::ingest::{StorageError, Store};
use bonsai_core::store::manifest;
use bonsai_core::BlockId;
use std::collections::HashSet;

impl Store {
    /// Brings the index's versions in line with the shared backend's manifests (nothing to
    /// do on a backend of one server's own).
    pub(crate) fn learn_versions(&self) -> Result<(), StorageError> {
        if !self.backend().is_shared() || self.upstream().is_some() {
            return Ok(());
        }
        let listed: HashSet<String> = self.backend().list_manifests()?.into_iter().collect();
        let known = self.index().all_versions()?;
        let mut known_keys = HashSet::with_capacity(known.len());
        for (name, version) in known {
            let key = manifest::key(&name, version);
            if !listed.contains(&key) && self.index().forget_version(&name, version)? {
                tracing::info!(image = %name, version, "forgotten through another server");
            }
            known_keys.insert(key);
        }
        let mut refreshed = false;
        for key in listed.difference(&known_keys) {
            let Some(bytes) = self.backend().get_manifest(key)? else {
                continue; // forgotten while we listed
            };
            let Some((header, ids)) = manifest::parse(key, &bytes) else {
                tracing::warn!(key = %key, "damaged manifest in the bucket; not listed");
                continue;
            };
            if !refreshed {
                self.backend().refresh()?;
                refreshed = true;
            }
            self.index_foreign_blocks(&ids)?;
            if let Err(id) = self.index().register_version(&header, &ids)? {
                tracing::warn!(image = %header.name, version = header.version, block = %id,
                    "a version in the bucket names a block the bucket does not hold; not listed");
            }
        }
        Ok(())
    }

    /// Indexes, unverified, the blocks of `ids` that this index lacks and the backend holds.
    fn index_foreign_blocks(&self, ids: &[BlockId]) -> Result<(), StorageError> {
        let absent = self.index().missing(ids)?;
        if absent.is_empty() {
            return Ok(());
        }
        let sizes = self.backend().stat_many(&absent)?;
        let found: Vec<(BlockId, u64)> = absent
            .iter()
            .zip(sizes)
            .filter_map(|(id, s)| s.map(|s| (*id, s)))
            .collect();
        self.index().insert(&found)?;
        let ids: Vec<BlockId> = found.iter().map(|f| f.0).collect();
        self.index().mark_unverified(&ids)?;
        Ok(())
    }
}
