//! The byte forms both ends of API v1 share (docs/API.md): id lists, batch frames, and the
//! machine-readable error body. Written once here so the server and the client cannot
//! drift apart, and so the client never has to read the server's prose.

use crate::id::BlockId;

/// Bytes of a frame header: 32-byte id then u32 LE length.
pub const FRAME_HEADER: usize = 36;

/// Reads one frame of the batch wire format (`id ‖ u32 LE length ‖ bytes`) from a buffer.
/// Returns `None` when the buffer holds no complete frame yet; an error when the declared
/// length is above `max_len` (checked before waiting for the bytes, so a hostile length
/// never makes the reader buffer it).
pub fn parse_frame(buf: &[u8], max_len: usize) -> Result<Option<(BlockId, usize, usize)>, String> {
    if buf.len() < FRAME_HEADER {
        return Ok(None);
    }
    let id = BlockId::from_slice(&buf[..32]).expect("32 bytes");
    let len = u32::from_le_bytes(buf[32..36].try_into().expect("4 bytes")) as usize;
    if len > max_len {
        return Err(format!(
            "frame for block {id} declares {len} bytes, above the limit {max_len}"
        ));
    }
    if buf.len() < FRAME_HEADER + len {
        return Ok(None);
    }
    Ok(Some((id, FRAME_HEADER, len)))
}

/// Appends one frame of the batch wire format.
pub fn write_frame(out: &mut Vec<u8>, id: &BlockId, object: &[u8]) {
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&(object.len() as u32).to_le_bytes());
    out.extend_from_slice(object);
}

/// Concatenated 32-byte ids: the body of `missing`, `fetch` and manifests.
pub fn ids_body(ids: &[BlockId]) -> Vec<u8> {
    let mut body = Vec::with_capacity(ids.len() * 32);
    for id in ids {
        body.extend_from_slice(id.as_bytes());
    }
    body
}

/// Splits a body of concatenated ids; `None` if its length is not a multiple of 32.
pub fn parse_ids(body: &[u8]) -> Option<Vec<BlockId>> {
    if !body.len().is_multiple_of(32) {
        return None;
    }
    Some(
        body.chunks_exact(32)
            .map(|c| BlockId::from_slice(c).expect("32 bytes"))
            .collect(),
    )
}

/// The machine code in every API error body. Clients branch on it, never on `error` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (body shape, name, parameters).
    BadRequest,
    /// A block id in the path is not 64 lowercase hex digits.
    BadId,
    /// A body, frame or id list is over a limit.
    TooLarge,
    /// No token, or an unknown one.
    Unauthorized,
    /// The token's role is too low for this route.
    Forbidden,
    /// No such route or image.
    NotFound,
    /// A block is absent; `id` names it.
    BlockMissing,
    /// An uploaded block failed verification; `id` names the first.
    BlockRejected,
    /// The request took longer than the server allows.
    Timeout,
    /// Too many requests in flight; retry later.
    Busy,
    /// The store's disk is full.
    StorageFull,
    /// The server failed (details in its log).
    Internal,
    /// The server does not offer this operation.
    Unsupported,
    /// The request would replace what is never replaced (a kept sealed recipe).
    Conflict,
    /// A site cache's upstream store failed or could not be reached.
    Upstream,
    /// A code this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

/// An API error body: `{"error": "...", "code": "block_missing", "id": "<hex>"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// One line for humans.
    pub error: String,
    /// What happened, for programs.
    pub code: ErrorCode,
    /// The block concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<BlockId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bound() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &BlockId([1; 32]), b"hello");
        assert_eq!(parse_frame(&buf[..10], 100), Ok(None));
        assert_eq!(parse_frame(&buf[..38], 100), Ok(None));
        assert_eq!(parse_frame(&buf, 100), Ok(Some((BlockId([1; 32]), 36, 5))));
        assert!(parse_frame(&buf, 4).is_err());
        // the bound is checked from the header alone, before the bytes arrive
        assert!(parse_frame(&buf[..36], 4).is_err());
    }

    #[test]
    fn error_body_is_snake_case_and_tolerates_new_codes() {
        let body = ErrorBody {
            error: "block x not found".into(),
            code: ErrorCode::BlockMissing,
            id: Some(BlockId([2; 32])),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains("\"code\":\"block_missing\""), "{json}");
        assert_eq!(serde_json::from_str::<ErrorBody>(&json).unwrap(), body);
        let newer: ErrorBody =
            serde_json::from_str(r#"{"error":"x","code":"quota_exceeded"}"#).unwrap();
        assert_eq!(newer.code, ErrorCode::Unknown);
    }

    #[test]
    fn ids_round_trip() {
        let ids = vec![BlockId([1; 32]), BlockId([9; 32])];
        assert_eq!(parse_ids(&ids_body(&ids)), Some(ids));
        assert_eq!(parse_ids(&[0; 33]), None);
    }
}
