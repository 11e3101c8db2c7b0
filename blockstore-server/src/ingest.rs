//! The store's one write path and its reads, shared by the HTTP server and the embedded
//! store: verify BLAKE3(object) == id, hand the bytes to the backend, make them durable,
//! then index.
//!
//! Invariant: a block is indexed only after its bytes are durable, and only bytes that
//! hash to their id are ever written under it. So after a crash at any moment every
//! indexed block is readable and correct; an unindexed object is simply rewritten by the
//! next upload of that block. The backend is the truth; the index a cache of it.

use crate::backend::{Backend, BackendError, DirBackend};
use crate::index::{Index, IndexError};
use bonsai_core::codec::{verify_object, MAX_OBJECT};
use bonsai_core::store::{ImageInfo, StoreStats};
use bonsai_core::BlockId;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the storage layer (never the client's fault).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend failed (full disk, permissions, object store down, directory locked).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The index failed.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// An operation this store cannot do safely with its backend.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A sealed recipe for a version that is not registered.
    #[error("no image version {0:?} is registered; push it before keeping its recipe")]
    NoImage(String),
    /// The caller may not do this to this version (not its registrant).
    #[error("{0}")]
    Forbidden(String),
    /// The request would replace something that is never replaced.
    #[error("{0}")]
    Conflict(String),
    /// A site cache's upstream failed or refused a block it sent (one line for clients).
    #[error("upstream store: {0}")]
    Upstream(String),
    /// A site cache forwarded a request and the upstream answered with this.
    #[error(transparent)]
    Forwarded(bonsai_core::store::StoreError),
    /// The index lists a block the backend no longer has.
    #[error("block {0} is indexed but its data is gone; run `bonsai check` on the store")]
    Lost(BlockId),
}

/// Outcome of one batch of uploads.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct IngestOutcome {
    /// Newly stored.
    pub stored: u64,
    /// Already present.
    pub existed: u64,
    /// Refused, with the reason (a reply lists at most the first 100).
    pub rejected: Vec<Rejected>,
    /// How many were refused in all.
    pub rejected_count: u64,
}

/// A block the store refused.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    /// Its claimed id.
    pub id: BlockId,
    /// Why.
    pub reason: String,
}

/// Blocks in a backend plus their index.
pub struct Store {
    root: PathBuf,
    backend: Arc<dyn Backend>,
    index: Index,
    /// Uploads and existence answers hold it shared; gc's sweep and check's quarantine
    /// hold it exclusively, so a block is never deleted between "present" and its
    /// confirmation, nor between an upload's write and its index row (docs/OPERATING.md).
    pub(crate) gc_lock: std::sync::RwLock<()>,
    /// Held while a registration picks its version number and writes its manifest, so two
    /// pushes of one name through this server take consecutive numbers.
    pub(crate) registering: std::sync::Mutex<()>,
    /// The store this one caches (`serve --upstream`), if it is a site cache.
    pub(crate) upstream: Option<Arc<crate::cache::Upstream>>,
}

impl Store {
    /// Opens (creating and locking) a store directory: `blocks/`, `tmp/`, `manifests/`,
    /// `index.sqlite`. The files are the truth: an index that is missing while the
    /// directory holds data, or that is damaged, is rebuilt from them (`recover.rs`).
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        let backend = Arc::new(DirBackend::open(root)?);
        let store = crate::recover::open_index(root, backend, false)?;
        store.upgrade_legacy_manifests()?;
        Ok(store)
    }

    /// Opens a store directory and rebuilds its index from its files (`--rebuild-index`);
    /// the old index is kept beside it as `index.sqlite.replaced.TIME`.
    pub fn open_rebuilding(root: &Path) -> Result<Self, StorageError> {
        let backend = Arc::new(DirBackend::open(root)?);
        let store = crate::recover::open_index(root, backend, true)?;
        store.upgrade_legacy_manifests()?;
        Ok(store)
    }

    /// A store over any backend, its index in `index_dir/index.sqlite`.
    pub fn with_backend(index_dir: &Path, backend: Arc<dyn Backend>) -> Result<Self, StorageError> {
        std::fs::create_dir_all(index_dir).map_err(|e| BackendError::io(index_dir.display(), e))?;
        let index = Index::open(&index_dir.join("index.sqlite"))?;
        Ok(Store {
            root: index_dir.to_path_buf(),
            backend,
            index,
            gc_lock: std::sync::RwLock::new(()),
            registering: std::sync::Mutex::new(()),
            upstream: None,
        })
    }

    /// Makes this store a site cache of `up` (cache.rs): reads it lacks are fetched there,
    /// writes go through to it.
    pub fn with_upstream(mut self, up: crate::cache::Upstream) -> Result<Self, StorageError> {
        if self.backend.is_shared() {
            // eviction would delete objects other servers over the bucket still list
            return Err(StorageError::Unsupported(
                "a site cache keeps its blocks in a directory of its own, not in a shared bucket",
            ));
        }
        let last = self.ensure_cache_schema()?;
        up.tick(last);
        self.upstream = Some(Arc::new(up));
        Ok(self)
    }

    /// The upstream of a site cache.
    pub fn upstream(&self) -> Option<&crate::cache::Upstream> {
        self.upstream.as_deref()
    }

    /// The directory holding the index (and, for a directory backend, the blocks).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The backend, for operations that walk or prune it (gc, check, index rebuild).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The index, for operations that query it.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Checks one upload; `Some(reason)` if refused.
    fn refusal(id: &BlockId, bytes: &[u8]) -> Option<String> {
        if bytes.len() > MAX_OBJECT {
            return Some(format!(
                "object of {} bytes exceeds the block size limit",
                bytes.len()
            ));
        }
        verify_object(id, bytes).err().map(|e| e.to_string())
    }

    /// Verifies and stores a batch. Bad blocks are reported, good ones kept.
    /// Invalid objects are refused before the index is asked about anything. A site cache
    /// sends the good ones to its upstream first and keeps them only once it has them.
    pub fn put_many(&self, items: &[(BlockId, &[u8])]) -> Result<IngestOutcome, StorageError> {
        if let Some(up) = &self.upstream {
            let good: Vec<(BlockId, &[u8])> = items
                .iter()
                .filter(|(id, b)| Self::refusal(id, b).is_none())
                .copied()
                .collect();
            if !good.is_empty() {
                use bonsai_core::store::WriteStore;
                up.client()
                    .put(&good)
                    .map_err(crate::cache::upstream_error)?;
            }
            let out = self.put_local(items)?;
            let ids: Vec<BlockId> = good.iter().map(|(id, _)| *id).collect();
            self.record_use(up, &ids)?;
            self.evict_if_over(up)?;
            return Ok(out);
        }
        self.put_local(items)
    }

    /// [`Store::put_many`] into this store's own backend and index.
    pub(crate) fn put_local(
        &self,
        items: &[(BlockId, &[u8])],
    ) -> Result<IngestOutcome, StorageError> {
        let mut out = IngestOutcome::default();
        let mut valid = Vec::with_capacity(items.len());
        for (id, bytes) in items {
            match Self::refusal(id, bytes) {
                Some(reason) => {
                    out.rejected_count += 1;
                    out.rejected.push(Rejected { id: *id, reason });
                }
                None => valid.push((*id, *bytes)),
            }
        }
        let ids: Vec<BlockId> = valid.iter().map(|i| i.0).collect();
        let _shared = self.shared();
        let missing: HashSet<BlockId> = self.index.missing(&ids)?.into_iter().collect();
        let present: Vec<BlockId> = ids
            .iter()
            .filter(|i| !missing.contains(i))
            .copied()
            .collect();
        self.index.confirm(&present)?;
        let mut written: Vec<(BlockId, u64)> = Vec::new();
        let mut plains: Vec<(BlockId, u32)> = Vec::new();
        let mut to_write: Vec<(BlockId, &[u8])> = Vec::new();
        let mut seen = HashSet::new();
        for (id, bytes) in &valid {
            if !missing.contains(id) || !seen.insert(*id) {
                out.existed += 1;
                continue;
            }
            to_write.push((*id, *bytes));
            plains.extend(crate::report::plain_len(bytes).map(|p| (*id, p)));
        }
        // one call for the batch: concurrent requests on a remote backend
        let puts = self.backend.put_many_if_absent(&to_write)?;
        if self.backend.is_shared() {
            let there: Vec<(BlockId, &[u8])> = to_write
                .iter()
                .zip(&puts)
                .filter(|(_, p)| **p == crate::backend::Put::Present)
                .map(|(item, _)| *item)
                .collect();
            self.replace_wrong(&there)?;
        }
        written.extend(to_write.iter().map(|(id, b)| (*id, b.len() as u64)));
        if !written.is_empty() {
            self.backend.flush()?;
            let added = self.index.insert(&written)?;
            self.index.record_plain(&plains)?;
            out.stored += added;
            out.existed += written.len() as u64 - added;
        }
        Ok(out)
    }

    /// Which ids are absent. On a shared backend an index miss is confirmed with the
    /// backend (another server may have stored it) and indexed if found.
    pub fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StorageError> {
        if let Some(up) = &self.upstream {
            return self.missing_via(up, ids);
        }
        let _shared = self.shared();
        let absent = self.index.missing(ids)?;
        if !self.backend.is_shared() {
            // "Present" confirms the block: gc keeps it for a grace period from now.
            let gone: HashSet<&BlockId> = absent.iter().collect();
            let present: Vec<BlockId> = ids.iter().filter(|i| !gone.contains(i)).copied().collect();
            self.index.confirm(&present)?;
            return Ok(absent);
        }
        // A shared bucket: present only once verified by this store (trust.rs).
        let mut gone: HashSet<BlockId> = absent.into_iter().collect();
        let hits: Vec<BlockId> = distinct(ids.iter().filter(|i| !gone.contains(i)));
        gone.extend(self.distrusted(&hits)?);
        let candidates: Vec<BlockId> = distinct(gone.iter());
        let found = self.verified_in_backend(&candidates)?;
        if !found.is_empty() {
            self.index.insert(&found)?;
            for (id, _) in &found {
                gone.remove(id);
            }
        }
        if let Some(gc) = self.backend.shared_gc() {
            // a gc run through any server honours this answer, or it becomes "missing"
            let present = distinct(ids.iter().filter(|i| !gone.contains(i)));
            let unsafe_now = gc.honour_present(&present)?;
            if !unsafe_now.is_empty() {
                let sizes = self.index.sizes_of(&unsafe_now)?;
                let rows: Vec<(BlockId, u64)> = unsafe_now.iter().copied().zip(sizes).collect();
                self.index.drop_blocks(&rows)?;
                gone.extend(unsafe_now);
            }
        }
        Ok(ids.iter().filter(|i| gone.contains(i)).copied().collect())
    }

    /// Which ids are absent, from a view of a shared backend that is fresh now, not a
    /// moment old: for downloads and registrations, where "missing" is a refusal. Blocks
    /// another server stored are indexed unverified (trust.rs): a download's client checks
    /// every block itself, and a registration's pusher was told "present" only for blocks
    /// this store verified.
    pub(crate) fn missing_exact(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StorageError> {
        if self.upstream.is_some() || !self.backend.is_shared() {
            return self.missing(ids);
        }
        let absent = distinct(self.index.missing(ids)?.iter());
        if absent.is_empty() {
            return Ok(absent);
        }
        let sizes = self.backend.stat_many_fresh(&absent)?;
        let mut found = Vec::new();
        let mut gone = HashSet::new();
        for (id, size) in absent.iter().zip(sizes) {
            match size {
                Some(s) => found.push((*id, s)),
                None => {
                    gone.insert(*id);
                }
            }
        }
        if !found.is_empty() {
            self.index.insert(&found)?;
            let ids: Vec<BlockId> = found.iter().map(|f| f.0).collect();
            self.index.mark_unverified(&ids)?;
        }
        Ok(ids.iter().filter(|i| gone.contains(i)).copied().collect())
    }

    /// A site cache's answer: the upstream's (a block held here may be gone there).
    fn missing_via(
        &self,
        up: &crate::cache::Upstream,
        ids: &[BlockId],
    ) -> Result<Vec<BlockId>, StorageError> {
        use bonsai_core::store::ReadStore;
        // the upstream decides: a block held here may have been collected there, and a
        // push told "present" would then fail to register (asking also confirms it there)
        let gone: HashSet<BlockId> = up
            .client()
            .missing(&distinct(ids.iter()))
            .map_err(crate::cache::upstream_error)?
            .into_iter()
            .collect();
        Ok(ids.iter().filter(|i| gone.contains(i)).copied().collect())
    }

    /// A block's bytes, if stored (for a site cache: held, or fetched from its upstream).
    pub fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, StorageError> {
        match &self.upstream {
            Some(up) => Ok(self
                .cached_get_many(up, std::slice::from_ref(id))?
                .pop()
                .flatten()),
            None => self.get_local(id),
        }
    }

    /// A block's bytes from this store's own backend, if indexed here.
    pub(crate) fn get_local(&self, id: &BlockId) -> Result<Option<Vec<u8>>, StorageError> {
        if self.index.size_of(id)?.is_none() {
            if self.backend.is_shared() {
                return Ok(self.backend.get(id)?);
            }
            return Ok(None);
        }
        match self.backend.get(id)? {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(StorageError::Lost(*id)),
        }
    }

    /// Blocks' bytes in order, `None` where absent: [`Store::get`] for a batch download, in
    /// one backend call on a shared backend (concurrent requests to the bucket).
    pub fn get_many(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        if let Some(up) = &self.upstream {
            return self.cached_get_many(up, ids);
        }
        if !self.backend.is_shared() {
            return ids.iter().map(|id| self.get_local(id)).collect();
        }
        Ok(self.backend.get_many(ids)?)
    }

    /// Store-wide figures.
    pub fn stats(&self) -> Result<StoreStats, StorageError> {
        self.learn_versions()?;
        let mut stats = self.index.stats()?;
        stats.cache = self.upstream.as_ref().map(|up| up.stats());
        stats.object_store = self.backend.object_store_stats()?;
        Ok(stats)
    }

    /// Records an image's zero bytes for reports (after [`Store::register`]).
    pub fn record_figures(&self, name: &str, zero_bytes: u64) -> Result<(), StorageError> {
        Ok(self.index.record_figures(name, zero_bytes)?)
    }

    /// The dedup report, from the index alone.
    pub fn report(
        &self,
        opts: &bonsai_core::report::ReportOptions,
    ) -> Result<bonsai_core::report::StoreReport, StorageError> {
        if self.upstream.is_some() {
            return Err(StorageError::Unsupported(crate::cache::NO_ADMIN));
        }
        self.learn_versions()?;
        Ok(self.index.report(opts)?)
    }

    /// Registered images.
    pub fn images(&self) -> Result<Vec<ImageInfo>, StorageError> {
        self.image_infos()
    }
}

/// The distinct ids of `ids`, in first-seen order.
fn distinct<'a>(ids: impl Iterator<Item = &'a BlockId>) -> Vec<BlockId> {
    let mut seen = HashSet::new();
    ids.filter(|i| seen.insert(**i)).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    #[test]
    fn verifies_stores_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let good = Encoder::new().encode(&Convergence::public(), b"block one");
        let other = Encoder::new().encode(&Convergence::public(), b"block two");
        {
            let s = Store::open(dir.path()).unwrap();
            let out = s
                .put_many(&[
                    (good.id, &good.object),
                    (good.id, &other.object),
                    (good.id, &good.object),
                ])
                .unwrap();
            assert_eq!(out.stored, 1);
            assert_eq!(out.existed, 1);
            assert_eq!(out.rejected.len(), 1);
            assert_eq!(s.missing(&[good.id, other.id]).unwrap(), vec![other.id]);
            assert_eq!(
                s.register("img", 100, &[good.id, other.id]).unwrap(),
                Some(other.id)
            );
            assert_eq!(s.register("img", 100, &[good.id]).unwrap(), None);
            assert_eq!(
                s.backend().list_manifests().unwrap(),
                vec![bonsai_core::store::manifest::key("img", 1)]
            );
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get(&good.id).unwrap().unwrap(), good.object);
        assert_eq!(s.get(&other.id).unwrap(), None);
        let st = s.stats().unwrap();
        assert_eq!(
            (st.blocks, st.stored_bytes, st.images, st.logical_bytes),
            (1, good.object.len() as u64, 1, 100)
        );
        std::fs::remove_file(
            s.backend().describe()
                + "/blocks/"
                + &good.id.to_hex()[..2]
                + "/"
                + &good.id.to_hex()[2..4]
                + "/"
                + &good.id.to_hex(),
        )
        .unwrap();
        assert!(matches!(s.get(&good.id), Err(StorageError::Lost(_))));
    }
}
