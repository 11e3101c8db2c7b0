//! The server side of the NBD protocol (NetworkBlockDevice/nbd `doc/proto.md`): fixed
//! newstyle negotiation, structured replies, the `base:allocation` meta context, and the
//! read-only commands READ, BLOCK_STATUS, FLUSH, CACHE and DISC. WRITE, TRIM and
//! WRITE_ZEROES are answered EPERM (the export is read-only; writes go to a qcow2 overlay,
//! README "Boot while it arrives").
//!
//! Why hand-written: the `nbd` crate (vi/rust-nbd) serves a `Read + Seek` with simple
//! replies only — no structured replies, no block status, one request at a time — and
//! `nbdkit`'s Rust bindings make bonsai a plugin of a C server. The subset a read-only
//! export needs is small.
//!
//! Requests of one connection run concurrently (up to [`IN_FLIGHT`]): a read that waits
//! for the store does not hold back a read of blocks already here. Replies are written
//! whole under one lock, so chunks of different replies never interleave.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_LIST_META_CONTEXT: u32 = 9;
const OPT_SET_META_CONTEXT: u32 = 10;

const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const REP_ERR_UNSUP: u32 = 0x8000_0001;
const REP_ERR_INVALID: u32 = 0x8000_0003;
const REP_ERR_UNKNOWN: u32 = 0x8000_0006;

const INFO_EXPORT: u16 = 0;
const INFO_BLOCK_SIZE: u16 = 3;

const TFLAG_HAS_FLAGS: u16 = 1;
const TFLAG_READ_ONLY: u16 = 1 << 1;
const TFLAG_SEND_FLUSH: u16 = 1 << 2;
const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;
const TFLAG_SEND_CACHE: u16 = 1 << 10;

const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_CACHE: u16 = 5;
const CMD_BLOCK_STATUS: u16 = 7;
const CMD_FLAG_REQ_ONE: u16 = 1 << 3;

const REPLY_FLAG_DONE: u16 = 1;
const REPLY_TYPE_NONE: u16 = 0;
const REPLY_TYPE_OFFSET_DATA: u16 = 1;
const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
const REPLY_TYPE_ERROR: u16 = (1 << 15) + 1;

const STATE_HOLE: u32 = 1;
const STATE_ZERO: u32 = 2;

const EPERM: u32 = 1;
const EIO: u32 = 5;
const EINVAL: u32 = 22;
const ENOTSUP: u32 = 95;

/// The meta context id of `base:allocation` (the only one served).
const ALLOCATION_ID: u32 = 1;
const ALLOCATION: &str = "base:allocation";
/// Largest read or cache request served (what qemu's own server allows).
pub const MAX_REQUEST: u32 = 32 << 20;
/// Requests of one connection handled at once.
pub const IN_FLIGHT: usize = 16;
/// Most option messages in one negotiation, and the largest option payload.
const MAX_OPTIONS: usize = 64;
const MAX_OPTION_BYTES: u32 = 64 * 1024;
/// Most descriptors in one block-status reply.
const MAX_DESCRIPTORS: usize = 1024;
/// The whole negotiation must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// One run of the export as block status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Length in bytes (> 0).
    pub len: u64,
    /// A hole: reads as zeros, costs nothing.
    pub hole: bool,
}

/// Why a read could not be answered: the client sees EIO with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFault(pub String);

/// What an NBD export serves: a fixed-size, read-only disk.
pub trait Device: Send + Sync {
    /// Size of the disk in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (the range lies inside the disk).
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadFault>;
    /// The runs from `offset`, covering at most `len` bytes and at most `max` runs.
    fn runs(&self, offset: u64, len: u64, max: usize) -> Vec<Run>;
    /// Asks for the range to be made local ahead of a read (NBD_CMD_CACHE).
    fn prefetch(&self, offset: u64, len: u64) -> Result<(), ReadFault>;
    /// Makes what was written locally durable (NBD_CMD_FLUSH).
    fn flush(&self) -> io::Result<()>;
    /// A client connected (`true`) or went away (`false`).
    fn session(&self, started: bool) {
        let _ = started;
    }
}

/// A connection from either listener.
#[derive(Debug)]
pub enum Stream {
    /// A unix-socket client.
    Unix(UnixStream),
    /// A TCP client.
    Tcp(TcpStream),
}

impl Stream {
    /// A second handle on the same connection.
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }
    /// Ends the connection both ways (a blocked read on it returns).
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// What negotiation settled.
#[derive(Debug, Default, Clone, Copy)]
struct Session {
    structured: bool,
    allocation: bool,
}

/// Serves one client until it disconnects; errors are the connection's own (a client
/// that broke the protocol or went away), never the device's.
pub fn serve_connection(mut stream: Stream, device: &dyn Device, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let Some(session) = negotiate(&mut stream, device, name)? else {
        return Ok(());
    };
    stream.set_read_timeout(None)?;
    device.session(true);
    let result = transmission(stream, device, session);
    device.session(false);
    result
}

fn negotiate(s: &mut Stream, device: &dyn Device, name: &str) -> io::Result<Option<Session>> {
    let mut hello = Vec::with_capacity(18);
    hello.extend_from_slice(&NBDMAGIC.to_be_bytes());
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&hello)?;
    let client = u32::from_be_bytes(read_n::<4>(s)?);
    if client & !3 != 0 || client & 1 == 0 {
        return Err(proto("client lacks fixed newstyle or sent unknown flags"));
    }
    let no_zeroes = client & 2 != 0;
    let mut session = Session::default();
    for _ in 0..MAX_OPTIONS {
        let head = read_n::<16>(s)?;
        if be64(&head[..8]) != IHAVEOPT {
            return Err(proto("option without IHAVEOPT"));
        }
        let (opt, len) = (be32(&head[8..12]), be32(&head[12..16]));
        if len > MAX_OPTION_BYTES {
            return Err(proto("option payload too large"));
        }
        let mut data = vec![0u8; len as usize];
        s.read_exact(&mut data)?;
        match opt {
            OPT_EXPORT_NAME => {
                let mut out = Vec::new();
                out.extend_from_slice(&device.size().to_be_bytes());
                out.extend_from_slice(&transmission_flags().to_be_bytes());
                if !no_zeroes {
                    out.extend_from_slice(&[0u8; 124]);
                }
                s.write_all(&out)?;
                return Ok(Some(session));
            }
            OPT_ABORT => {
                let _ = option_reply(s, opt, REP_ACK, &[]);
                return Ok(None);
            }
            OPT_LIST => list(s, name, &data)?,
            OPT_STRUCTURED_REPLY if data.is_empty() => {
                session.structured = true;
                option_reply(s, opt, REP_ACK, &[])?;
            }
            OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
                meta_context(s, opt, &data, name, &mut session)?
            }
            OPT_INFO | OPT_GO => {
                if info(s, opt, &data, device, name)? && opt == OPT_GO {
                    return Ok(Some(session));
                }
            }
            OPT_STRUCTURED_REPLY => option_reply(s, opt, REP_ERR_INVALID, b"no payload")?,
            _ => option_reply(s, opt, REP_ERR_UNSUP, b"not offered by bonsai export")?,
        }
    }
    Err(proto("too many options"))
}

fn transmission_flags() -> u16 {
    TFLAG_HAS_FLAGS | TFLAG_READ_ONLY | TFLAG_SEND_FLUSH | TFLAG_CAN_MULTI_CONN | TFLAG_SEND_CACHE
}

fn list(s: &mut Stream, name: &str, data: &[u8]) -> io::Result<()> {
    if !data.is_empty() {
        return option_reply(s, OPT_LIST, REP_ERR_INVALID, b"no payload");
    }
    let mut body = (name.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(name.as_bytes());
    option_reply(s, OPT_LIST, REP_SERVER, &body)?;
    option_reply(s, OPT_LIST, REP_ACK, &[])
}

/// Whether a client's export name names this export ("" is the default export).
fn names_us(asked: &[u8], name: &str) -> bool {
    asked.is_empty() || asked == name.as_bytes()
}

/// INFO and GO: `true` when the export was described (GO then starts transmission).
fn info(s: &mut Stream, opt: u32, data: &[u8], dev: &dyn Device, name: &str) -> io::Result<bool> {
    let Some((asked, rest)) = take_string(data) else {
        option_reply(s, opt, REP_ERR_INVALID, b"malformed request")?;
        return Ok(false);
    };
    let count = rest.get(..2).map(be16);
    if count.is_none_or(|n| rest.len() != 2 + 2 * n as usize) {
        option_reply(s, opt, REP_ERR_INVALID, b"malformed information requests")?;
        return Ok(false);
    }
    if !names_us(asked, name) {
        option_reply(s, opt, REP_ERR_UNKNOWN, b"no such export")?;
        return Ok(false);
    }
    let mut export = INFO_EXPORT.to_be_bytes().to_vec();
    export.extend_from_slice(&dev.size().to_be_bytes());
    export.extend_from_slice(&transmission_flags().to_be_bytes());
    option_reply(s, opt, REP_INFO, &export)?;
    let mut sizes = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
    for v in [1u32, 4096, MAX_REQUEST] {
        sizes.extend_from_slice(&v.to_be_bytes());
    }
    option_reply(s, opt, REP_INFO, &sizes)?;
    option_reply(s, opt, REP_ACK, &[])?;
    Ok(true)
}

fn meta_context(
    s: &mut Stream,
    opt: u32,
    data: &[u8],
    name: &str,
    session: &mut Session,
) -> io::Result<()> {
    if opt == OPT_SET_META_CONTEXT && !session.structured {
        return option_reply(s, opt, REP_ERR_INVALID, b"structured replies first");
    }
    let Some((asked, mut rest)) = take_string(data) else {
        return option_reply(s, opt, REP_ERR_INVALID, b"malformed request");
    };
    if !names_us(asked, name) {
        return option_reply(s, opt, REP_ERR_UNKNOWN, b"no such export");
    }
    let Some(n) = rest.get(..4).map(be32) else {
        return option_reply(s, opt, REP_ERR_INVALID, b"malformed request");
    };
    rest = &rest[4..];
    let mut queries = Vec::new();
    for _ in 0..n {
        let Some((q, r)) = take_string(rest) else {
            return option_reply(s, opt, REP_ERR_INVALID, b"malformed query");
        };
        queries.push(q);
        rest = r;
    }
    if !rest.is_empty() {
        return option_reply(s, opt, REP_ERR_INVALID, b"trailing bytes");
    }
    let listing_all = opt == OPT_LIST_META_CONTEXT && queries.is_empty();
    let wanted = listing_all
        || queries.iter().any(|q| {
            *q == ALLOCATION.as_bytes() || (opt == OPT_LIST_META_CONTEXT && *q == b"base:")
        });
    if opt == OPT_SET_META_CONTEXT {
        session.allocation = wanted;
    }
    if wanted {
        let mut body = ALLOCATION_ID.to_be_bytes().to_vec();
        body.extend_from_slice(ALLOCATION.as_bytes());
        option_reply(s, opt, REP_META_CONTEXT, &body)?;
    }
    option_reply(s, opt, REP_ACK, &[])
}

/// A u32-length-prefixed string and what follows it.
fn take_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = be32(b.get(..4)?) as usize;
    let s = b.get(4..4 + n)?;
    Some((s, &b[4 + n..]))
}

fn option_reply(s: &mut Stream, opt: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(20 + data.len());
    out.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&opt.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    s.write_all(&out)
}

/// One request from the client.
#[derive(Debug, Clone, Copy)]
struct Request {
    flags: u16,
    kind: u16,
    cookie: u64,
    offset: u64,
    len: u32,
}

/// Counts requests in flight and lets the reader wait for room or for all to end.
struct Gate {
    busy: Mutex<usize>,
    cond: Condvar,
}

impl Gate {
    fn enter(&self) {
        let mut n = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= IN_FLIGHT {
            n = self.cond.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
    }
    fn leave(&self) {
        *self.busy.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.cond.notify_all();
    }
}

fn transmission(stream: Stream, device: &dyn Device, session: Session) -> io::Result<()> {
    let mut reader = stream.try_clone()?;
    let writer = Mutex::new(stream);
    let gate = Arc::new(Gate {
        busy: Mutex::new(0),
        cond: Condvar::new(),
    });
    let result = std::thread::scope(|scope| -> io::Result<()> {
        loop {
            let req = match read_request(&mut reader) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            match req.kind {
                CMD_DISC => return Ok(()),
                CMD_WRITE => {
                    // the payload follows the header; read it to stay in step, refuse it
                    io::copy(&mut (&mut reader).take(req.len as u64), &mut io::sink())?;
                    reply_error(&writer, session, req, EPERM, "the export is read-only")?;
                }
                _ => {
                    gate.enter();
                    let (writer, gate) = (&writer, gate.clone());
                    scope.spawn(move || {
                        if answer(writer, device, session, req).is_err() {
                            lock(writer).shutdown();
                        }
                        gate.leave();
                    });
                }
            }
        }
    });
    lock(&writer).shutdown();
    result
}

fn lock(w: &Mutex<Stream>) -> std::sync::MutexGuard<'_, Stream> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_request(r: &mut Stream) -> io::Result<Request> {
    let h = read_n::<28>(r)?;
    if be32(&h[..4]) != REQUEST_MAGIC {
        return Err(proto("bad request magic"));
    }
    Ok(Request {
        flags: be16(&h[4..6]),
        kind: be16(&h[6..8]),
        cookie: be64(&h[8..16]),
        offset: be64(&h[16..24]),
        len: be32(&h[24..28]),
    })
}

/// Answers one request (not WRITE or DISC).
fn answer(w: &Mutex<Stream>, dev: &dyn Device, s: Session, req: Request) -> io::Result<()> {
    let in_bounds = req
        .offset
        .checked_add(req.len as u64)
        .is_some_and(|end| end <= dev.size());
    match req.kind {
        CMD_FLUSH => match dev.flush() {
            Ok(()) => reply_ok(w, s, req),
            Err(e) => reply_error(w, s, req, EIO, &e.to_string()),
        },
        CMD_READ | CMD_CACHE | CMD_BLOCK_STATUS if !in_bounds => {
            reply_error(w, s, req, EINVAL, "request beyond the end of the export")
        }
        CMD_READ | CMD_CACHE if req.len > MAX_REQUEST => {
            reply_error(w, s, req, EINVAL, "request larger than 32 MiB")
        }
        CMD_READ => read(w, dev, s, req),
        CMD_CACHE => match dev.prefetch(req.offset, req.len as u64) {
            Ok(()) => reply_ok(w, s, req),
            Err(f) => reply_error(w, s, req, EIO, &f.0),
        },
        CMD_BLOCK_STATUS if s.allocation && req.len > 0 => block_status(w, dev, s, req),
        CMD_BLOCK_STATUS => reply_error(w, s, req, EINVAL, "no meta context negotiated"),
        _ => reply_error(w, s, req, ENOTSUP, "command not offered by bonsai export"),
    }
}

fn read(w: &Mutex<Stream>, dev: &dyn Device, s: Session, req: Request) -> io::Result<()> {
    let runs = match s.structured {
        true => dev.runs(req.offset, req.len as u64, MAX_DESCRIPTORS),
        false => Vec::new(),
    };
    let whole = runs.iter().map(|r| r.len).sum::<u64>() == req.len as u64;
    if !s.structured || !whole || runs.len() == 1 && !runs[0].hole {
        let mut buf = vec![0u8; req.len as usize];
        return match dev.read(req.offset, &mut buf) {
            Ok(()) => reply_data(w, s, req, &buf),
            Err(f) => reply_error(w, s, req, EIO, &f.0),
        };
    }
    // structured: holes go as OFFSET_HOLE chunks, read no byte; data as OFFSET_DATA
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(runs.len());
    let mut at = req.offset;
    for (i, run) in runs.iter().enumerate() {
        let flags = if i + 1 == runs.len() {
            REPLY_FLAG_DONE
        } else {
            0
        };
        let mut payload = at.to_be_bytes().to_vec();
        let kind = if run.hole {
            payload.extend_from_slice(&(run.len as u32).to_be_bytes());
            REPLY_TYPE_OFFSET_HOLE
        } else {
            let start = payload.len();
            payload.resize(start + run.len as usize, 0);
            if let Err(f) = dev.read(at, &mut payload[start..]) {
                return reply_error(w, s, req, EIO, &f.0);
            }
            REPLY_TYPE_OFFSET_DATA
        };
        chunks.push(structured_chunk(flags, kind, req.cookie, &payload));
        at += run.len;
    }
    lock(w).write_all(&chunks.concat())
}

fn block_status(w: &Mutex<Stream>, dev: &dyn Device, s: Session, req: Request) -> io::Result<()> {
    let max = if req.flags & CMD_FLAG_REQ_ONE != 0 {
        1
    } else {
        MAX_DESCRIPTORS
    };
    let runs = dev.runs(req.offset, req.len as u64, max);
    let mut payload = ALLOCATION_ID.to_be_bytes().to_vec();
    for run in runs.iter().take(max) {
        let len = run.len.min(u32::MAX as u64 & !511) as u32;
        let state = if run.hole { STATE_HOLE | STATE_ZERO } else { 0 };
        payload.extend_from_slice(&len.to_be_bytes());
        payload.extend_from_slice(&state.to_be_bytes());
    }
    if runs.is_empty() {
        return reply_error(w, s, req, EIO, "no extent at this offset");
    }
    let chunk = structured_chunk(
        REPLY_FLAG_DONE,
        REPLY_TYPE_BLOCK_STATUS,
        req.cookie,
        &payload,
    );
    lock(w).write_all(&chunk)
}

fn structured_chunk(flags: u16, kind: u16, cookie: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + payload.len());
    out.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn simple_reply(error: u32, cookie: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + data.len());
    out.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn reply_ok(w: &Mutex<Stream>, s: Session, req: Request) -> io::Result<()> {
    let bytes = match s.structured {
        true => structured_chunk(REPLY_FLAG_DONE, REPLY_TYPE_NONE, req.cookie, &[]),
        false => simple_reply(0, req.cookie, &[]),
    };
    lock(w).write_all(&bytes)
}

fn reply_data(w: &Mutex<Stream>, s: Session, req: Request, data: &[u8]) -> io::Result<()> {
    let bytes = match s.structured {
        true => {
            let mut payload = req.offset.to_be_bytes().to_vec();
            payload.extend_from_slice(data);
            structured_chunk(
                REPLY_FLAG_DONE,
                REPLY_TYPE_OFFSET_DATA,
                req.cookie,
                &payload,
            )
        }
        false => simple_reply(0, req.cookie, data),
    };
    lock(w).write_all(&bytes)
}

fn reply_error(
    w: &Mutex<Stream>,
    s: Session,
    req: Request,
    errno: u32,
    msg: &str,
) -> io::Result<()> {
    let bytes = match s.structured {
        true => {
            let msg = &msg.as_bytes()[..msg.len().min(4096)];
            let mut payload = errno.to_be_bytes().to_vec();
            payload.extend_from_slice(&(msg.len() as u16).to_be_bytes());
            payload.extend_from_slice(msg);
            structured_chunk(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, req.cookie, &payload)
        }
        false => simple_reply(errno, req.cookie, &[]),
    };
    lock(w).write_all(&bytes)
}

fn read_n<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn proto(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("nbd client: {msg}"))
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}
