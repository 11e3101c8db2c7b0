//! The two batch transfers, the hot paths: upload of framed blocks and download of framed
//! blocks. Both are built so that a hostile or stalled peer costs bounded memory and never
//! holds a storage slot or a blocking thread while it dawdles:
//!
//! - upload parses frames as they arrive (each byte once), stores them in ~8 MiB groups,
//!   lists at most [`MAX_LISTED`] refusals and stops parsing after `max_rejected` of them;
//! - download reads a few blocks at a time on a blocking thread (holding a slot only for
//!   the read) and hands them to the connection; a client that stops reading stops the
//!   stream, not a worker. A failure after the first byte ends the body early (the chunked
//!   encoding has no terminating chunk), which a client sees as a cut-off reply.

use crate::api::{blocking, parse_ids, read_body, verdict};
use crate::error::ApiError;
use crate::ingest::IngestOutcome;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bonsai_core::store::{parse_frame, write_frame};
use bonsai_core::BlockId;
use futures_util::StreamExt;
use std::sync::Arc;

/// Refusals listed by id and reason in one reply; the rest are only counted.
pub(crate) const MAX_LISTED: usize = 100;
/// Bytes of frames stored per group.
const GROUP: usize = 8 * 1024 * 1024;
/// The same for a bucket, where each group is a pack: a whole upload of the client's
/// (up to twice its batch size) in one.
const BUCKET_GROUP: usize = 16 * 1024 * 1024;
/// Bytes of frames read per step of a download.
const FETCH_STEP: usize = 64 * 1024;
/// A download step from a bucket: enough blocks that a pack's neighbours share a GET.
const BUCKET_STEP: u64 = 4 << 20;

/// Frames received but not yet stored; each byte is parsed once.
#[derive(Default)]
struct FrameBuffer {
    buf: Vec<u8>,
    frames: Vec<(BlockId, usize, usize)>,
    parsed: usize,
}

impl FrameBuffer {
    fn push(&mut self, chunk: &[u8], max_block: usize) -> Result<(), ApiError> {
        self.buf.extend_from_slice(chunk);
        while let Some((id, skip, len)) =
            parse_frame(&self.buf[self.parsed..], max_block).map_err(ApiError::too_large)?
        {
            self.frames.push((id, self.parsed + skip, len));
            self.parsed += skip + len;
        }
        Ok(())
    }

    /// The complete frames so far, leaving any partial frame behind.
    fn take(&mut self) -> (Vec<u8>, Vec<(BlockId, usize, usize)>) {
        let rest = self.buf.split_off(self.parsed);
        self.parsed = 0;
        (
            std::mem::replace(&mut self.buf, rest),
            std::mem::take(&mut self.frames),
        )
    }
}

/// Adds one group's outcome, listing refusals only up to [`MAX_LISTED`].
fn absorb(total: &mut IngestOutcome, out: IngestOutcome) {
    total.stored += out.stored;
    total.existed += out.existed;
    total.rejected_count += out.rejected_count;
    let room = MAX_LISTED.saturating_sub(total.rejected.len());
    total.rejected.extend(out.rejected.into_iter().take(room));
}

async fn store_group(
    st: &AppState,
    data: Vec<u8>,
    frames: Vec<(BlockId, usize, usize)>,
) -> Result<IngestOutcome, ApiError> {
    let store = st.store.clone();
    blocking(st, move || {
        let items: Vec<(BlockId, &[u8])> = frames
            .iter()
            .map(|&(id, at, len)| (id, &data[at..at + len]))
            .collect();
        Ok(store.put_many(&items)?)
    })
    .await
}

/// Batch upload: frames are parsed as they arrive and stored in groups of ~8 MiB, so a
/// large request needs little memory. A cut-off body stores the complete frames before
/// the cut and nothing of the incomplete one.
pub(crate) async fn upload_batch(
    State(st): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = st.limits.max_request_bytes;
    let mut stream = body.into_data_stream();
    let (mut frames, mut total, mut outcome) =
        (FrameBuffer::default(), 0usize, IngestOutcome::default());
    let mut eof = false;
    let group = match st.store.backend().is_shared() {
        true => BUCKET_GROUP,
        false => GROUP,
    };
    while !eof {
        match stream.next().await {
            Some(Ok(chunk)) => {
                total += chunk.len();
                if total > limit {
                    return Err(ApiError::too_large(format!(
                        "request body exceeds {limit} bytes; send smaller batches"
                    )));
                }
                frames.push(&chunk, st.limits.max_block_bytes)?;
            }
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!(
                    "request body incomplete: {e}"
                )))
            }
            None => eof = true,
        }
        if frames.parsed > 0 && (frames.parsed >= group || eof) {
            let (data, list) = frames.take();
            absorb(&mut outcome, store_group(&st, data, list).await?);
            if outcome.rejected_count as usize >= st.limits.max_rejected {
                tracing::warn!(
                    rejected = outcome.rejected_count,
                    "stopped parsing a batch of invalid blocks"
                );
                // discard the rest unparsed (within the body limit), so the reply is not
                // lost to a connection reset caused by unread bytes
                while let Some(Ok(chunk)) = stream.next().await {
                    total += chunk.len();
                    if total > limit {
                        break;
                    }
                }
                return Ok(verdict(outcome));
            }
        }
    }
    if !frames.buf.is_empty() {
        return Err(ApiError::bad_request(format!(
            "request body ends inside a frame ({} stray bytes); complete frames before it were stored",
            frames.buf.len()
        )));
    }
    Ok(verdict(outcome))
}

/// Reads the next step of a download: frames from `pos` up to [`FETCH_STEP`] bytes (at
/// least one block). Returns the bytes and the next position.
fn read_step(st: &AppState, ids: &[BlockId], mut pos: usize) -> Result<(Vec<u8>, usize), ApiError> {
    if st.store.upstream().is_none() && st.store.backend().is_shared() {
        return read_bucket_step(st, ids, pos);
    }
    let mut out = Vec::new();
    while pos < ids.len() && (out.is_empty() || out.len() < FETCH_STEP) {
        let id = ids[pos];
        match st.store.get_for_download(&id)? {
            Some(obj) => write_frame(&mut out, &id, &obj),
            None => {
                return Err(ApiError::block_missing(
                    StatusCode::NOT_FOUND,
                    id,
                    format!("block {id} vanished during the download"),
                ))
            }
        }
        pos += 1;
    }
    Ok((out, pos))
}

/// [`read_step`] from a bucket: up to [`BUCKET_STEP`] bytes of blocks in one backend
/// call, so that neighbours in a pack are read with one ranged GET, not one each.
fn read_bucket_step(
    st: &AppState,
    ids: &[BlockId],
    pos: usize,
) -> Result<(Vec<u8>, usize), ApiError> {
    let sizes = (st.store.index())
        .sizes_of(&ids[pos..ids.len().min(pos + 4096)])
        .map_err(crate::ingest::StorageError::from)?;
    let (mut end, mut bytes) = (pos, 0u64);
    for s in sizes {
        let s = if s == 0 { 64 << 10 } else { s }; // not indexed: count a typical block
        if end > pos && bytes + s > BUCKET_STEP {
            break;
        }
        bytes += s;
        end += 1;
    }
    let mut out = Vec::with_capacity(bytes as usize + (end - pos) * 40);
    for (id, obj) in ids[pos..end].iter().zip(st.store.get_many(&ids[pos..end])?) {
        match obj {
            Some(obj) => write_frame(&mut out, id, &obj),
            None => {
                return Err(ApiError::block_missing(
                    StatusCode::NOT_FOUND,
                    *id,
                    format!("block {id} vanished during the download"),
                ))
            }
        }
    }
    Ok((out, end))
}

/// Batch download: all ids are checked first (404 names the first absent one), then the
/// objects stream out as frames in the order asked, a step at a time.
pub(crate) async fn fetch(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, st.limits.max_ids * 32).await?;
    let ids = Arc::new(parse_ids(&body, st.limits.max_ids)?);
    let (store, check) = (st.store.clone(), ids.clone());
    let absent = blocking(&st, move || Ok(store.prepare_download(&check)?)).await?;
    if let Some(id) = absent.first() {
        return Err(ApiError::block_missing(
            StatusCode::NOT_FOUND,
            *id,
            format!("block {id} not found"),
        ));
    }
    let stream = futures_util::stream::unfold(Some(0usize), move |pos| {
        let (st, ids) = (st.clone(), ids.clone());
        async move {
            let pos = pos.filter(|p| *p < ids.len())?;
            let step = blocking(&st.clone(), move || read_step(&st, &ids, pos)).await;
            Some(match step {
                Ok((bytes, next)) => (Ok(Bytes::from(bytes)), Some(next)),
                Err(e) => {
                    tracing::error!(message = %e.message, "download cut off");
                    (Err(std::io::Error::other(e.message)), None)
                }
            })
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}
