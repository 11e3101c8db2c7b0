//! The JSON rendering of a recipe, printed by `bonsai recipe show --json`. For humans and
//! tools, never read back; its schema is documented in docs/FORMAT.md ("Recipe JSON").

use super::{Extent, ImageCheck, Recipe};

impl Recipe {
    /// The rendering used by `bonsai recipe show --json` (schema in docs/FORMAT.md).
    pub fn to_json(&self) -> serde_json::Value {
        let extents: Vec<serde_json::Value> = self
            .extents_with_offsets()
            .map(|(offset, length, e)| match e {
                Extent::Hole { .. } => {
                    serde_json::json!({"offset": offset, "length": length, "hole": true})
                }
                Extent::Block { index } => {
                    let b = &self.blocks[*index as usize];
                    serde_json::json!({"offset": offset, "length": length, "id": b.id, "key": b.key})
                }
            })
            .collect();
        let check = match self.image_check() {
            ImageCheck::WholeImageBlake3(_) => "whole-image-blake3",
            ImageCheck::Extents(_) => "extents-blake3",
        };
        serde_json::json!({
            "format_version": self.version,
            "header": self.header,
            "logical_size": self.logical_size,
            "image_check": check,
            "image_hash": self.image_hash,
            "distinct_blocks": self.blocks.len(),
            "extents": extents,
        })
    }
}
