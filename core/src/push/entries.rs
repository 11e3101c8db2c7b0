//! Push, step 3: the recipe's entries, in image order — a hole per zero piece, a block
//! per chunk — and the list of blocks used for the first time, bound for the store.
//!
//! The recipe is streamed into an unpublished file ([`crate::publish::Pending`]); it
//! becomes visible only after every upload is acknowledged and the manifest registered.

use super::encode::NewBlocks;
use super::upload::UploadItem;
use crate::batch::ChunkBatch;
use crate::id::{BlockId, BlockKey, ImageHash};
use crate::recipe::RecipeWriter;
use crate::stats::PushReport;
use std::io::{self, Write};

/// The recipe being written and the image's distinct blocks so far.
pub(crate) struct Entries<W: Write> {
    writer: RecipeWriter<W>,
    /// (key, id) of each distinct block, in order of first use.
    pub(crate) firsts: Vec<(BlockKey, BlockId)>,
}

impl<W: Write> Entries<W> {
    pub(crate) fn new(writer: RecipeWriter<W>) -> Self {
        Entries {
            writer,
            firsts: Vec::new(),
        }
    }

    /// Whether the image has used this key before.
    pub(crate) fn seen(&self, key: &BlockKey) -> bool {
        self.writer.index_of(key).is_some()
    }

    /// Appends the batch's entries; returns the blocks it uses for the first time.
    pub(crate) fn add(
        &mut self,
        batch: &ChunkBatch,
        keys: &[BlockKey],
        mut new: NewBlocks,
        report: &mut PushReport,
    ) -> io::Result<Vec<UploadItem>> {
        let mut upload = Vec::new();
        let mut k = 0usize;
        for p in &batch.pieces {
            if p.zero {
                self.writer.hole(p.len);
                report.zero_bytes += p.len;
                continue;
            }
            let key = keys[k];
            let len = p.len as u32;
            k += 1;
            report.chunks += 1;
            report.data_bytes += p.len;
            let id = match self.writer.index_of(&key) {
                Some(i) => self.firsts[i as usize].1,
                None => new.ids[new.index[&key]],
            };
            if self.writer.block(&id, &key, len)? {
                self.firsts.push((key, id));
                report.unique_bytes += p.len;
                let n = new.index[&key];
                let object = new.objects[n].take();
                let plain = object.is_none().then(|| batch.data(new.piece[n]).to_vec());
                upload.push(UploadItem {
                    id,
                    key,
                    len,
                    object,
                    plain,
                });
            }
        }
        report.cache_hits += new.cache_hits;
        Ok(upload)
    }

    /// Writes the trailer; returns the inner writer and the image hash (recipe v2: over
    /// the extents, computed by the writer).
    pub(crate) fn finish(self, logical: u64) -> io::Result<(W, ImageHash)> {
        self.writer.finish(logical)
    }
}
