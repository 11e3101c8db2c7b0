//! Several stores as one, nearest first (`--store` given more than once): each block is
//! read from the first store that holds it, everything written goes to the first.
//!
//! Nothing a store answers is trusted more for being near: pull decodes every block
//! against its recipe key, whichever store sent it. A block none holds is
//! [`StoreError::NotFound`], as from one store.

use super::{
    AdminStore, BlockStore, CheckOptions, CheckReport, ForgetReport, GcOptions, GcReport,
    ImageInfo, PutOutcome, ReadStore, Registered, StoreError, StoreStats, WriteStore,
};
use crate::id::BlockId;
use std::collections::{HashMap, HashSet};

/// Stores in the order they are asked; at least one.
pub struct Tiered {
    stores: Vec<Box<dyn BlockStore>>,
}

impl Tiered {
    /// `stores`, nearest first. Panics if empty: callers always have one.
    pub fn new(stores: Vec<Box<dyn BlockStore>>) -> Self {
        assert!(!stores.is_empty(), "a tiered store needs a store");
        Tiered { stores }
    }

    fn first(&self) -> &dyn BlockStore {
        &*self.stores[0]
    }

    /// The first answer that is `Some`, asking each store in turn.
    fn first_some(
        &self,
        ask: impl Fn(&dyn BlockStore) -> Result<Option<Vec<u8>>, StoreError>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        for s in &self.stores {
            if let Some(found) = ask(&**s)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

impl ReadStore for Tiered {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        let mut pending: Vec<BlockId> = ids.to_vec();
        for s in &self.stores {
            if pending.is_empty() {
                break;
            }
            pending = s.missing(&pending)?;
        }
        let absent: HashSet<BlockId> = pending.into_iter().collect();
        Ok(ids.iter().filter(|i| absent.contains(i)).copied().collect())
    }

    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut found: HashMap<BlockId, Vec<u8>> = HashMap::new();
        let mut pending: Vec<BlockId> = {
            let mut seen = HashSet::new();
            ids.iter().filter(|i| seen.insert(**i)).copied().collect()
        };
        for (k, s) in self.stores.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            // the last store is asked directly: what it lacks is NotFound either way
            let absent: HashSet<BlockId> = match k + 1 == self.stores.len() {
                true => HashSet::new(),
                false => s.missing(&pending)?.into_iter().collect(),
            };
            let here: Vec<BlockId> = pending
                .iter()
                .filter(|i| !absent.contains(i))
                .copied()
                .collect();
            if !here.is_empty() {
                found.extend(here.iter().copied().zip(s.get(&here)?));
            }
            pending.retain(|i| absent.contains(i));
        }
        if let Some(id) = pending.first() {
            return Err(StoreError::NotFound(*id));
        }
        ids.iter()
            .map(|i| found.get(i).cloned().ok_or(StoreError::NotFound(*i)))
            .collect()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.first().stats()
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self.stores.iter().map(|s| s.describe()).collect();
        names.join(", then ")
    }

    fn report(
        &self,
        opts: &crate::report::ReportOptions,
    ) -> Result<crate::report::StoreReport, StoreError> {
        self.first().report(opts)
    }
}

impl WriteStore for Tiered {
    fn put(&self, blocks: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError> {
        self.first().put(blocks)
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        self.first().register(name, logical, ids)
    }

    fn register_image(
        &self,
        reg: &crate::report::Registration<'_>,
    ) -> Result<Registered, StoreError> {
        self.first().register_image(reg)
    }

    fn register_copy(
        &self,
        reg: &crate::report::Registration<'_>,
        version: u64,
    ) -> Result<bool, StoreError> {
        self.first().register_copy(reg, version)
    }
}

impl AdminStore for Tiered {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        self.first().images()
    }
    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        self.first().forget(names)
    }
    fn gc(&self, opts: &GcOptions) -> Result<GcReport, StoreError> {
        self.first().gc(opts)
    }
    fn check(&self, opts: &CheckOptions) -> Result<CheckReport, StoreError> {
        self.first().check(opts)
    }
    fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        self.first().put_sealed_recipe(name, sealed)
    }
    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.first_some(|s| s.get_sealed_recipe(name))
    }
    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.first_some(|s| s.get_manifest(name))
    }
    fn put_profile(&self, name: &str, profile: &[u8]) -> Result<bool, StoreError> {
        self.first().put_profile(name, profile)
    }
    fn get_profile(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.first_some(|s| s.get_profile(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;
    use crate::{Convergence, Encoder};

    fn block(n: u8) -> crate::codec::EncodedBlock {
        Encoder::new().encode(&Convergence::public(), &[n; 100])
    }

    #[test]
    fn each_block_comes_from_the_first_store_holding_it() {
        let (near, far) = (MemStore::new(), MemStore::new());
        let (a, b, c) = (block(1), block(2), block(3));
        near.put(&[(a.id, &a.object)]).unwrap();
        far.put(&[(a.id, &a.object), (b.id, &b.object)]).unwrap();
        let t = Tiered::new(vec![Box::new(near), Box::new(far)]);
        assert_eq!(
            t.missing(&[c.id, a.id, b.id, c.id]).unwrap(),
            vec![c.id, c.id]
        );
        let got = t.get(&[b.id, a.id, b.id]).unwrap();
        assert_eq!(
            got,
            vec![b.object.clone(), a.object.clone(), b.object.clone()]
        );
        assert!(matches!(t.get(&[a.id, c.id]), Err(StoreError::NotFound(id)) if id == c.id));
        // writes go to the first
        t.put(&[(c.id, &c.object)]).unwrap();
        assert!(t.stores[0].has(&c.id).unwrap() && !t.stores[1].has(&c.id).unwrap());
        assert!(t.describe().contains(", then "));
    }
}
