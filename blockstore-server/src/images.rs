//! Registered images as operators see them (name, size, blocks, bytes only each image
//! holds), forgetting images, and the sealed recipes the store keeps for their owners
//! (objects of the backend beside the manifests: they outlive any one server's index).
//!
//! "Bytes only it holds" is what forgetting the image and collecting garbage would free;
//! the query joins manifests with block sizes and needs no block read.

use crate::index::{Index, IndexError};
use crate::ingest::{StorageError, Store};
use bonsai_core::store::ImageInfo;

impl Index {
    /// Registered images with their figures, by name.
    pub fn image_infos(&self) -> Result<Vec<ImageInfo>, IndexError> {
        let db = self.conn();
        let mut stmt = db.prepare(
            "SELECT im.name, im.logical_bytes, im.blocks, im.registered,
               (SELECT coalesce(sum(b.size), 0) FROM image_blocks ib
                  JOIN blocks b ON b.id = ib.id
                 WHERE ib.name = im.name
                   AND NOT EXISTS (SELECT 1 FROM image_blocks o
                                    WHERE o.id = ib.id AND o.name <> ib.name))
             FROM images im ORDER BY im.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ImageInfo {
                name: r.get(0)?,
                logical_bytes: r.get::<_, i64>(1)? as u64,
                blocks: r.get::<_, i64>(2)? as u64,
                registered: r.get(3)?,
                unique_bytes: r.get::<_, i64>(4)? as u64,
                sealed_recipe: false,
            })
        })?;
        rows.collect()
    }

    /// Whether `name` is registered.
    pub fn has_image(&self, name: &str) -> Result<bool, IndexError> {
        self.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM images WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )
    }

    /// Unregisters `name`; false if no such image.
    pub fn forget(&self, name: &str) -> Result<bool, IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        let existed = tx.execute("DELETE FROM images WHERE name = ?1", [name])? == 1;
        tx.execute("DELETE FROM image_blocks WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(existed)
    }
}

impl Store {
    /// Registered images with their figures, and whether a sealed recipe is kept for each.
    pub fn image_infos(&self) -> Result<Vec<ImageInfo>, StorageError> {
        let mut infos = self.index().image_infos()?;
        let sealed: std::collections::HashSet<String> =
            self.backend().list_sealed_recipes()?.into_iter().collect();
        for info in &mut infos {
            info.sealed_recipe = sealed.contains(&info.name);
        }
        Ok(infos)
    }

    /// Unregisters an image and drops its sealed recipe; its blocks go at the next gc
    /// unless another image uses them. The backend (the truth) goes first: should the
    /// index update fail after it, the image stays listed and its blocks kept, which is
    /// safe, and a rebuild would not bring it back.
    pub fn forget(&self, name: &str) -> Result<bool, StorageError> {
        let manifest = self.backend().delete_manifest(name)?;
        self.backend().delete_sealed_recipe(name)?;
        let indexed = self.index().forget(name)?;
        Ok(manifest || indexed)
    }

    /// Keeps a sealed recipe (opaque bytes) for a registered image (registered through
    /// this server's index, or, on a shared bucket, through another server).
    pub fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StorageError> {
        let known = self.index().has_image(name)?
            || (self.backend().is_shared() && self.backend().get_manifest(name)?.is_some());
        if !known {
            return Err(StorageError::NoImage(name.to_string()));
        }
        Ok(self.backend().put_sealed_recipe(name, sealed)?)
    }

    /// A kept sealed recipe.
    pub fn sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.backend().get_sealed_recipe(name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    #[test]
    fn unique_bytes_and_forget() {
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
        s.put_sealed_recipe("a", b"sealed").unwrap();
        let e = s.put_sealed_recipe("nobody", b"sealed").unwrap_err();
        assert!(e.to_string().contains("push it before"), "{e}");
        let list = s.image_infos().unwrap();
        assert_eq!(list[0].unique_bytes, b[1].object.len() as u64);
        assert!(list[0].sealed_recipe && !list[1].sealed_recipe);
        assert!(s.forget("a").unwrap());
        assert!(!s.forget("a").unwrap());
        assert_eq!(s.sealed_recipe("a").unwrap(), None);
        let list = s.image_infos().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(
            list[0].unique_bytes,
            (b[0].object.len() + b[2].object.len()) as u64
        );
    }
}
