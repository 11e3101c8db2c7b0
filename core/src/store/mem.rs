//! An in-memory store for unit tests of the engines. It verifies uploads like the real one
//! and passes the same conformance suite ([`super::conformance`]).

use super::{
    AdminStore, ForgetReport, ImageInfo, PutOutcome, ReadStore, StoreError, StoreStats, WriteStore,
};
use crate::id::BlockId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Blocks in a map; images in another. Not for production: nothing is durable.
#[derive(Default)]
pub struct MemStore {
    blocks: Mutex<HashMap<BlockId, Vec<u8>>>,
    images: Mutex<BTreeMap<String, ImageInfo>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panicking test thread cannot leave a map half-updated: every update is one call
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces a stored object's bytes, to test that pull catches corruption.
    pub fn corrupt(&self, id: &BlockId, object: Vec<u8>) {
        lock(&self.blocks).insert(*id, object);
    }
}

impl ReadStore for MemStore {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        let blocks = lock(&self.blocks);
        Ok(ids
            .iter()
            .filter(|i| !blocks.contains_key(i))
            .copied()
            .collect())
    }

    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let blocks = lock(&self.blocks);
        ids.iter()
            .map(|id| blocks.get(id).cloned().ok_or(StoreError::NotFound(*id)))
            .collect()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let blocks = lock(&self.blocks);
        let images = lock(&self.images);
        Ok(StoreStats {
            blocks: blocks.len() as u64,
            stored_bytes: blocks.values().map(|b| b.len() as u64).sum(),
            images: images.len() as u64,
            logical_bytes: images
                .values()
                .fold(0u64, |a, i| a.saturating_add(i.logical_bytes)),
            dedup_ratio: 0.0,
            cache: None,
            object_store: None,
        }
        .with_ratio())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

impl WriteStore for MemStore {
    fn put(&self, items: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError> {
        let mut out = PutOutcome::default();
        for (id, obj) in items {
            crate::codec::verify_object(id, obj).map_err(|e| StoreError::Rejected {
                id: *id,
                reason: e.to_string(),
            })?;
            let mut blocks = lock(&self.blocks);
            if blocks.contains_key(id) {
                out.existed += 1;
            } else {
                blocks.insert(*id, obj.to_vec());
                out.stored += 1;
            }
        }
        Ok(out)
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        if let Some(id) = self.missing(ids)?.first() {
            return Err(StoreError::NotFound(*id));
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        let info = ImageInfo {
            name: name.into(),
            logical_bytes: logical,
            blocks: distinct.len() as u64,
            registered: 0,
            ..Default::default()
        };
        lock(&self.images).insert(name.into(), info);
        Ok(())
    }
}

impl AdminStore for MemStore {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        Ok(lock(&self.images).values().cloned().collect())
    }

    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        let mut images = lock(&self.images);
        let mut report = ForgetReport::default();
        for n in names {
            match images.remove(n) {
                Some(_) => report.forgotten.push(n.clone()),
                None => report.unknown.push(n.clone()),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_conformance_suite() {
        crate::store::conformance::run_all(&MemStore::new());
    }

    #[test]
    fn admin_defaults_are_typed_refusals() {
        let err = MemStore::new()
            .gc(&Default::default())
            .expect_err("no gc in memory");
        assert!(matches!(
            &err,
            StoreError::Unsupported { operation, .. } if operation == "gc"
        ));
        assert_eq!(err.to_string(), "store memory does not support gc");
    }
}
