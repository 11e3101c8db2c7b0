//! An in-memory store for unit tests of the engines. It verifies uploads like the real one.

use super::{BlockStore, PutOutcome, StoreError, StoreStats};
use crate::id::BlockId;
use std::collections::HashMap;
use std::sync::Mutex;

/// Blocks in a map; images in another. Not for production: nothing is durable.
#[derive(Default)]
pub struct MemStore {
    blocks: Mutex<HashMap<BlockId, Vec<u8>>>,
    images: Mutex<HashMap<String, u64>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces a stored object's bytes, to test that pull catches corruption.
    pub fn corrupt(&self, id: &BlockId, object: Vec<u8>) {
        self.blocks.lock().expect("lock").insert(*id, object);
    }
}

impl BlockStore for MemStore {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        let blocks = self.blocks.lock().expect("lock");
        Ok(ids
            .iter()
            .filter(|i| !blocks.contains_key(i))
            .copied()
            .collect())
    }

    fn put(&self, items: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError> {
        let mut out = PutOutcome::default();
        for (id, obj) in items {
            crate::codec::verify_object(id, obj).map_err(|e| StoreError::Rejected {
                id: *id,
                reason: e.to_string(),
            })?;
            let mut blocks = self.blocks.lock().expect("lock");
            if blocks.contains_key(id) {
                out.existed += 1;
            } else {
                blocks.insert(*id, obj.to_vec());
                out.stored += 1;
            }
        }
        Ok(out)
    }

    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let blocks = self.blocks.lock().expect("lock");
        ids.iter()
            .map(|id| blocks.get(id).cloned().ok_or(StoreError::NotFound(*id)))
            .collect()
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        if let Some(id) = self.missing(ids)?.first() {
            return Err(StoreError::NotFound(*id));
        }
        self.images
            .lock()
            .expect("lock")
            .insert(name.into(), logical);
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let blocks = self.blocks.lock().expect("lock");
        let images = self.images.lock().expect("lock");
        Ok(StoreStats {
            blocks: blocks.len() as u64,
            stored_bytes: blocks.values().map(|b| b.len() as u64).sum(),
            images: images.len() as u64,
            logical_bytes: images.values().sum(),
            dedup_ratio: 0.0,
        }
        .with_ratio())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
