//! Object names inside the bucket.
//!
//! ```text
//! PREFIX/packs/TIME-HASH              a pack of blocks (docs/FORMAT.md "Pack"): TIME is the
//!                                     writer's clock in ms (13 digits), HASH 32 hex of the
//!                                     BLAKE3 of its index
//! PREFIX/blocks/ab/abcdef…(64 hex)   one object per block (stores written before packs)
//! PREFIX/gc/…                         the journal of gc runs on the bucket (`gc_journal.rs`)
//! PREFIX/images/HEX(NAME)             manifest of a registered image (the register body)
//! PREFIX/recipes/HEX(NAME)            sealed recipe of an image (opaque, client-encrypted)
//! PREFIX/profiles/HEX(NAME)           boot profile of an image version (block ids in read order)
//! ```
//!
//! Blocks go into packs (`packs.rs`): one object per block cost a PUT per block (29,527
//! per GiB on corpus C) and a HEAD and GET per block pulled. Pack keys start with the
//! writer's clock so that a server learns what others stored since it last looked with one
//! listing that starts after a key (`list_with_offset`), not a listing of the whole bucket.
//! Block objects of older stores are still read, listed and collected.

use bonsai_core::BlockId;

/// Key names under one store prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    base: String,
}

impl Layout {
    /// The layout under `prefix` (empty: the bucket's root).
    pub fn new(prefix: &str) -> Self {
        let base = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Layout { base }
    }

    /// The prefix every key starts with (empty, or `PREFIX/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Key of a block object.
    pub fn block(&self, id: &BlockId) -> String {
        let h = id.to_hex();
        format!("{}blocks/{}/{h}", self.base, &h[..2])
    }

    /// Key prefix of one of the 256 block shards (`shard` is the id's first byte).
    pub fn shard(&self, shard: u8) -> String {
        format!("{}blocks/{shard:02x}/", self.base)
    }

    /// The id a block key names, if it is one (listings may hold foreign objects).
    pub fn block_id(&self, key: &str) -> Option<BlockId> {
        let rest = key.strip_prefix(&self.base)?.strip_prefix("blocks/")?;
        let (shard, hex) = rest.split_once('/')?;
        let id: BlockId = hex.parse().ok()?;
        (hex.len() == 64 && shard == &hex[..2]).then_some(id)
    }

    /// Key prefix of all packs.
    pub fn packs(&self) -> String {
        format!("{}packs/", self.base)
    }

    /// Key of the pack named `name` (`TIME-HASH`).
    pub fn pack(&self, name: &str) -> String {
        format!("{}packs/{name}", self.base)
    }

    /// The pack name a key names, if it is one.
    pub fn pack_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        let name = key.strip_prefix(&self.base)?.strip_prefix("packs/")?;
        let (time, hash) = name.split_once('-')?;
        let ok = time.len() == 13
            && time.bytes().all(|b| b.is_ascii_digit())
            && hash.len() == 32
            && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then_some(name)
    }

    /// Key prefix of the gc journal.
    pub fn gc(&self) -> String {
        format!("{}gc/", self.base)
    }

    /// Key prefix of all manifests.
    pub fn images(&self) -> String {
        format!("{}images/", self.base)
    }

    /// Key of an image's manifest.
    pub fn image(&self, name: &str) -> String {
        format!("{}images/{name}", self.base)
    }

    /// The image name a manifest key names.
    pub fn image_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.base)?
            .strip_prefix("images/")
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }

    /// Key prefix of the sealed recipes.
    pub fn recipes(&self) -> String {
        format!("{}recipes/", self.base)
    }

    /// Key of an image's sealed recipe.
    pub fn recipe(&self, name: &str) -> String {
        format!("{}recipes/{name}", self.base)
    }

    /// Key of a version's boot profile.
    pub fn profile(&self, name: &str) -> String {
        format!("{}profiles/{name}", self.base)
    }

    /// The file name a sealed recipe's key names.
    pub fn recipe_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.base)?
            .strip_prefix("recipes/")
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlockId {
        BlockId::from_slice(&[n; 32]).unwrap()
    }

    #[test]
    fn keys_round_trip() {
        for l in [Layout::new(""), Layout::new("team/store")] {
            let k = l.block(&id(0xab));
            assert!(
                k.ends_with(&format!("blocks/ab/{}", id(0xab).to_hex())),
                "{k}"
            );
            assert!(k.starts_with(&l.shard(0xab)));
            assert_eq!(l.block_id(&k), Some(id(0xab)));
            assert_eq!(l.image_name(&l.image("vm-1")), Some("vm-1"));
            assert_eq!(l.recipe_name(&l.recipe("vm-1")), Some("vm-1"));
            assert_eq!(l.image_name(&l.recipe("vm-1")), None);
        }
        let l = Layout::new("p");
        assert_eq!(l.block_id("p/blocks/ab/xyz"), None);
        assert_eq!(
            l.block_id(&format!("p/blocks/00/{}", id(0xab).to_hex())),
            None
        );
        assert_eq!(
            l.block_id(&format!("q/blocks/ab/{}", id(0xab).to_hex())),
            None
        );
        assert_eq!(l.image_name("p/images/"), None);
        let name = format!("0001700000000-{}", "ab".repeat(16));
        assert_eq!(l.pack_name(&l.pack(&name)), Some(name.as_str()));
        assert_eq!(l.pack_name("p/packs/1-ab"), None);
        assert_eq!(
            l.pack_name(&format!("p/packs/000170000000x-{}", "ab".repeat(16))),
            None
        );
    }
}
