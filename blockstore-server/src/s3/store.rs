//! A store over a bucket: the same contract as the directory store (verify BLAKE3(object)
//! == id before anything is written; index a block only once it is durable), with the
//! bucket as the truth and the local SQLite index as a cache of what the bucket holds.
//!
//! Reads that miss the cache ask the bucket before answering: `missing` HEADs each id the
//! index lacks, `register` does the same before refusing a manifest, `get` always GETs.
//! What the bucket confirms is added to the index, so the next question is local. An index
//! never claims a block the bucket lacks unless someone deleted it from the bucket behind
//! the servers' backs (gc goes through a server and removes index rows first).

use super::layout::{decode_manifest, encode_manifest};
use super::{rebuild, Bucket, S3Error, S3Location, S3Settings};
use crate::index::Index;
use crate::ingest::{IngestOutcome, Rejected};
use bonsai_core::codec::{verify_object, MAX_OBJECT};
use bonsai_core::store::StoreStats;
use bonsai_core::BlockId;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Blocks and manifests in a bucket, with a local index in front.
pub struct S3Store {
    bucket: Bucket,
    index: Index,
    index_path: PathBuf,
}

impl S3Store {
    /// Connects to the bucket (failing at once on wrong keys, a missing bucket or an
    /// unreachable endpoint) and opens the local index at `index_path`. With `rebuild`, or
    /// when the index is empty, the index is refilled from a listing of the bucket.
    pub fn open(
        location: &S3Location,
        settings: &S3Settings,
        index_path: &Path,
        rebuild: bool,
    ) -> Result<Self, S3Error> {
        let bucket = Bucket::open(location, settings)?;
        let ix = |source| S3Error::Index {
            path: index_path.to_path_buf(),
            source,
        };
        if let Some(dir) = index_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| S3Error::LocalIo {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        if rebuild {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = index_path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        let index = Index::open(index_path).map_err(ix)?;
        let empty = index.stats().map_err(ix)?.blocks == 0;
        let store = S3Store {
            bucket,
            index,
            index_path: index_path.to_path_buf(),
        };
        if empty {
            let r = rebuild::rebuild(&store.bucket, &store.index, index_path)?;
            tracing::info!(
                blocks = r.blocks,
                images = r.images,
                skipped_images = r.skipped_images,
                seconds = r.seconds,
                "local index rebuilt from the bucket"
            );
        }
        Ok(store)
    }

    /// The default place of the local index for a store: one file per location under the
    /// user's cache directory.
    pub fn default_index_path(location: &S3Location, settings: &S3Settings) -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        let what = format!("{location} {:?}", settings.endpoint);
        let tag = &blake3::hash(what.as_bytes()).to_hex()[..16];
        base.join("bonsai")
            .join(format!("s3-index-{}-{tag}.sqlite", location.bucket))
    }

    /// The bucket, for tools that inspect it.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn ix(&self, source: rusqlite::Error) -> S3Error {
        S3Error::Index {
            path: self.index_path.clone(),
            source,
        }
    }

    /// Verifies and stores a batch: bad blocks are reported, good ones uploaded
    /// create-if-absent (in parallel) and indexed once the bucket acknowledged them.
    pub fn put_many(&self, items: &[(BlockId, &[u8])]) -> Result<IngestOutcome, S3Error> {
        let mut out = IngestOutcome::default();
        let mut seen = HashSet::new();
        let mut good: Vec<(BlockId, &[u8])> = Vec::new();
        for (id, bytes) in items {
            let refused = if bytes.len() > MAX_OBJECT {
                Some(format!(
                    "object of {} bytes exceeds the block size limit",
                    bytes.len()
                ))
            } else {
                verify_object(id, bytes).err().map(|e| e.to_string())
            };
            if let Some(reason) = refused {
                out.rejected.push(Rejected { id: *id, reason });
            } else if seen.insert(*id) {
                good.push((*id, bytes));
            } else {
                out.existed += 1;
            }
        }
        let ids: Vec<BlockId> = good.iter().map(|g| g.0).collect();
        let absent: HashSet<BlockId> = self
            .index
            .missing(&ids)
            .map_err(|e| self.ix(e))?
            .into_iter()
            .collect();
        out.existed += (good.len() - absent.len()) as u64;
        good.retain(|g| absent.contains(&g.0));
        let created = self.bucket.put_blocks(&good)?;
        let rows: Vec<(BlockId, u64)> = good.iter().map(|g| (g.0, g.1.len() as u64)).collect();
        self.index.insert(&rows).map_err(|e| self.ix(e))?;
        let new = created
            .iter()
            .filter(|c| **c == super::bucket::Created::New)
            .count() as u64;
        out.stored += new;
        out.existed += created.len() as u64 - new;
        Ok(out)
    }

    /// Which ids are absent from the bucket: the index answers for what it holds, the
    /// bucket (one HEAD per id, in parallel) for the rest.
    pub fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, S3Error> {
        let unknown = self.index.missing(ids).map_err(|e| self.ix(e))?;
        if unknown.is_empty() {
            return Ok(unknown);
        }
        let sizes = self.bucket.stat_blocks(&unknown)?;
        let mut found = Vec::new();
        let mut absent = Vec::new();
        for (id, size) in unknown.into_iter().zip(sizes) {
            match size {
                Some(s) => found.push((id, s)),
                None => absent.push(id),
            }
        }
        if !found.is_empty() {
            self.index.insert(&found).map_err(|e| self.ix(e))?;
        }
        Ok(absent)
    }

    /// Blocks' bytes, `None` where the bucket lacks one; fetched in parallel.
    pub fn get_many(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, S3Error> {
        let got = self.bucket.get_blocks(ids)?;
        let learned: Vec<(BlockId, u64)> = ids
            .iter()
            .zip(&got)
            .filter_map(|(id, b)| b.as_ref().map(|b| (*id, b.len() as u64)))
            .collect();
        let unknown: HashSet<BlockId> = self
            .index
            .missing(&learned.iter().map(|l| l.0).collect::<Vec<_>>())
            .map_err(|e| self.ix(e))?
            .into_iter()
            .collect();
        if !unknown.is_empty() {
            let rows: Vec<_> = learned
                .into_iter()
                .filter(|l| unknown.contains(&l.0))
                .collect();
            self.index.insert(&rows).map_err(|e| self.ix(e))?;
        }
        Ok(got)
    }

    /// A block's bytes, if the bucket holds it.
    pub fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, S3Error> {
        Ok(self.get_many(std::slice::from_ref(id))?.pop().flatten())
    }

    /// Registers a manifest once every block is confirmed in the bucket: the manifest object
    /// is written to the bucket, then cached in the index. Returns the first absent id.
    pub fn register(
        &self,
        name: &str,
        logical: u64,
        ids: &[BlockId],
    ) -> Result<Option<BlockId>, S3Error> {
        if let Some(id) = self.missing(ids)?.first() {
            return Ok(Some(*id));
        }
        self.bucket
            .put_manifest(name, encode_manifest(logical, ids))?;
        match self
            .index
            .register(name, logical, ids)
            .map_err(|e| self.ix(e))?
        {
            None => Ok(None),
            // Only if a block was dropped from the index between the two steps (gc).
            Some(id) => Ok(Some(id)),
        }
    }

    /// An image's manifest as the bucket holds it: (logical bytes, ids).
    pub fn manifest(&self, name: &str) -> Result<Option<(u64, Vec<BlockId>)>, S3Error> {
        let Some(bytes) = self.bucket.get_manifest(name)? else {
            return Ok(None);
        };
        decode_manifest(&bytes)
            .map(Some)
            .map_err(|reason| S3Error::Manifest {
                store: self.bucket.location().to_string(),
                name: name.to_string(),
                reason,
            })
    }

    /// Store-wide figures, as far as this server's index knows them (after a rebuild:
    /// the whole bucket).
    pub fn stats(&self) -> Result<StoreStats, S3Error> {
        self.index.stats().map_err(|e| self.ix(e))
    }

    /// Registered images known to the index.
    pub fn images(&self) -> Result<Vec<(String, u64, u64, i64)>, S3Error> {
        self.index.images().map_err(|e| self.ix(e))
    }
}
