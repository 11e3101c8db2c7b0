//! A minimal NBD client: fixed-newstyle handshake, structured replies, `base:allocation`
//! block status, reads — over a unix socket to a qemu export we started ourselves.
//!
//! Why hand-written: no maintained Rust crate offers an NBD client with block status (the
//! `nbd` crate's client has neither structured replies nor block status; the libnbd Rust
//! bindings are not published on crates.io), and block status is what lets holes go
//! unread. The subset is small and follows the protocol document
//! (NetworkBlockDevice/nbd `doc/proto.md`). Extended headers (64-bit lengths, qemu ≥ 8.2)
//! are used when the server offers them, so one block-status request can describe an
//! exabyte hole; otherwise requests are capped at 4 GiB - 1 (compact headers).
//!
//! Caveat: one request in flight at a time; callers serialise with a mutex.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_SET_META_CONTEXT: u32 = 10;
const OPT_EXTENDED_HEADERS: u32 = 11;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const CMD_READ: u16 = 0;
const CMD_DISC: u16 = 2;
const CMD_BLOCK_STATUS: u16 = 7;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const EXT_REQUEST_MAGIC: u32 = 0x21e4_1c71;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
const EXT_REPLY_MAGIC: u32 = 0x6e8a_278c;
const FLAG_DONE: u16 = 1;
const STATE_ZERO: u64 = 2;
/// Largest read in one request (qemu's server allows 32 MiB).
pub const MAX_READ: usize = 32 << 20;

/// A connected, negotiated NBD client.
pub struct NbdClient {
    sock: UnixStream,
    size: u64,
    extended: bool,
    meta_id: u32,
    cookie: u64,
}

/// A reply bonsai cannot read: the local reader broke the protocol. Not `InvalidData`,
/// which is kept for the reader's own EIO (damage in the image, see `server_error`).
fn proto(msg: impl Into<String>) -> io::Error {
    io::Error::other(format!("nbd: {}", msg.into()))
}

impl NbdClient {
    /// Connects to `socket`, negotiates and opens export `name`.
    pub fn connect(socket: &Path, name: &str) -> io::Result<NbdClient> {
        let mut sock = UnixStream::connect(socket)?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(300)))?;
        let mut hello = [0u8; 18];
        sock.read_exact(&mut hello)?;
        if u64::from_be_bytes(hello[..8].try_into().expect("8")) != NBDMAGIC
            || u64::from_be_bytes(hello[8..16].try_into().expect("8")) != IHAVEOPT
        {
            return Err(proto("not an NBD newstyle server"));
        }
        let flags = u16::from_be_bytes([hello[16], hello[17]]);
        if flags & 1 == 0 {
            return Err(proto("server lacks fixed newstyle negotiation"));
        }
        sock.write_all(&(flags as u32 & 3).to_be_bytes())?;
        let mut c = NbdClient {
            sock,
            size: 0,
            extended: false,
            meta_id: 0,
            cookie: 0,
        };
        c.extended = c.option_ack(OPT_EXTENDED_HEADERS)?;
        if !c.extended && !c.option_ack(OPT_STRUCTURED_REPLY)? {
            return Err(proto("server refuses structured replies"));
        }
        c.set_meta_context(name)?;
        c.go(name)?;
        Ok(c)
    }

    /// Size of the export.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn send_option(&mut self, opt: u32, data: &[u8]) -> io::Result<()> {
        let mut m = Vec::with_capacity(16 + data.len());
        m.extend_from_slice(&IHAVEOPT.to_be_bytes());
        m.extend_from_slice(&opt.to_be_bytes());
        m.extend_from_slice(&(data.len() as u32).to_be_bytes());
        m.extend_from_slice(data);
        self.sock.write_all(&m)
    }

    /// One option reply: (type, data).
    fn option_reply(&mut self, opt: u32) -> io::Result<(u32, Vec<u8>)> {
        let mut h = [0u8; 20];
        self.sock.read_exact(&mut h)?;
        if u64::from_be_bytes(h[..8].try_into().expect("8")) != REPLY_MAGIC
            || u32::from_be_bytes(h[8..12].try_into().expect("4")) != opt
        {
            return Err(proto("bad option reply"));
        }
        let kind = u32::from_be_bytes(h[12..16].try_into().expect("4"));
        let len = u32::from_be_bytes(h[16..20].try_into().expect("4"));
        if len > 1 << 20 {
            return Err(proto("option reply too long"));
        }
        let mut data = vec![0u8; len as usize];
        self.sock.read_exact(&mut data)?;
        Ok((kind, data))
    }

    /// Sends an option without data; true if acknowledged, false if refused.
    fn option_ack(&mut self, opt: u32) -> io::Result<bool> {
        self.send_option(opt, &[])?;
        let (kind, _) = self.option_reply(opt)?;
        Ok(kind == REP_ACK)
    }

    fn set_meta_context(&mut self, name: &str) -> io::Result<()> {
        let query = b"base:allocation";
        let mut d = Vec::new();
        d.extend_from_slice(&(name.len() as u32).to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&1u32.to_be_bytes());
        d.extend_from_slice(&(query.len() as u32).to_be_bytes());
        d.extend_from_slice(query);
        self.send_option(OPT_SET_META_CONTEXT, &d)?;
        let mut found = false;
        loop {
            let (kind, data) = self.option_reply(OPT_SET_META_CONTEXT)?;
            match kind {
                REP_META_CONTEXT if data.len() >= 4 => {
                    self.meta_id = u32::from_be_bytes(data[..4].try_into().expect("4"));
                    found = &data[4..] == query;
                }
                REP_ACK if found => return Ok(()),
                _ => return Err(proto("server offers no base:allocation block status")),
            }
        }
    }

    fn go(&mut self, name: &str) -> io::Result<()> {
        let mut d = Vec::new();
        d.extend_from_slice(&(name.len() as u32).to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&0u16.to_be_bytes());
        self.send_option(OPT_GO, &d)?;
        loop {
            let (kind, data) = self.option_reply(OPT_GO)?;
            match kind {
                REP_INFO if data.len() >= 12 && data[..2] == [0, 0] => {
                    self.size = u64::from_be_bytes(data[2..10].try_into().expect("8"));
                }
                REP_INFO => {}
                REP_ACK => return Ok(()),
                k => {
                    return Err(proto(format!(
                        "export {name:?} refused ({k:#x}: {})",
                        String::from_utf8_lossy(&data)
                    )))
                }
            }
        }
    }

    fn request(&mut self, cmd: u16, offset: u64, len: u64) -> io::Result<u64> {
        self.cookie += 1;
        let mut m = Vec::with_capacity(32);
        let magic = if self.extended {
            EXT_REQUEST_MAGIC
        } else {
            REQUEST_MAGIC
        };
        m.extend_from_slice(&magic.to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        m.extend_from_slice(&cmd.to_be_bytes());
        m.extend_from_slice(&self.cookie.to_be_bytes());
        m.extend_from_slice(&offset.to_be_bytes());
        if self.extended {
            m.extend_from_slice(&len.to_be_bytes());
        } else {
            m.extend_from_slice(&(len as u32).to_be_bytes());
        }
        self.sock.write_all(&m)?;
        Ok(self.cookie)
    }

    /// Next reply chunk of request `cookie`: (flags, type, payload).
    fn chunk(&mut self, cookie: u64) -> io::Result<(u16, u16, Vec<u8>)> {
        let mut magic = [0u8; 4];
        self.sock.read_exact(&mut magic)?;
        let magic = u32::from_be_bytes(magic);
        let (flags, kind, got, len) = match magic {
            EXT_REPLY_MAGIC if self.extended => {
                let mut h = [0u8; 28];
                self.sock.read_exact(&mut h)?;
                let len = u64::from_be_bytes(h[20..28].try_into().expect("8"));
                (be16(&h[0..]), be16(&h[2..]), be64(&h[4..]), len)
            }
            STRUCTURED_REPLY_MAGIC if !self.extended => {
                let mut h = [0u8; 16];
                self.sock.read_exact(&mut h)?;
                let len = u32::from_be_bytes(h[12..16].try_into().expect("4")) as u64;
                (be16(&h[0..]), be16(&h[2..]), be64(&h[4..]), len)
            }
            SIMPLE_REPLY_MAGIC => {
                let mut h = [0u8; 12];
                self.sock.read_exact(&mut h)?;
                let err = u32::from_be_bytes(h[..4].try_into().expect("4"));
                return Err(server_error(err, ""));
            }
            _ => return Err(proto(format!("bad reply magic {magic:#x}"))),
        };
        if got != cookie {
            return Err(proto("reply to another request"));
        }
        if len > MAX_READ as u64 + 64 {
            return Err(proto("reply chunk too long"));
        }
        let mut payload = vec![0u8; len as usize];
        self.sock.read_exact(&mut payload)?;
        if kind & 0x8000 != 0 {
            let err = payload.get(..4).map(be32).unwrap_or(5);
            let msg_len = payload.get(4..6).map(be16).unwrap_or(0) as usize;
            let msg = payload.get(6..6 + msg_len).unwrap_or_default();
            return Err(server_error(err, &String::from_utf8_lossy(msg)));
        }
        Ok((flags, kind, payload))
    }

    /// Reads `buf.len()` (≤ [`MAX_READ`]) bytes at `offset`.
    pub fn read(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let cookie = self.request(CMD_READ, offset, buf.len() as u64)?;
        let mut filled = 0usize;
        loop {
            let (flags, kind, p) = self.chunk(cookie)?;
            match kind {
                1 if p.len() >= 8 => {
                    let at = (be64(&p) - offset) as usize;
                    let data = &p[8..];
                    let dst = buf
                        .get_mut(at..at + data.len())
                        .ok_or_else(|| proto("read reply outside the request"))?;
                    dst.copy_from_slice(data);
                    filled += data.len();
                }
                2 if p.len() >= 12 => {
                    let at = (be64(&p) - offset) as usize;
                    let n = be32(&p[8..]) as usize;
                    buf.get_mut(at..at + n)
                        .ok_or_else(|| proto("hole reply outside the request"))?
                        .fill(0);
                    filled += n;
                }
                0 => {}
                k => return Err(proto(format!("unexpected read reply type {k}"))),
            }
            if flags & FLAG_DONE != 0 {
                break;
            }
        }
        if filled != buf.len() {
            return Err(proto(format!(
                "read of {} bytes at {offset} returned {filled}",
                buf.len()
            )));
        }
        Ok(())
    }

    /// The first run of the map at `offset`, at most `len` bytes: (length, reads as zero).
    pub fn block_status(&mut self, offset: u64, len: u64) -> io::Result<(u64, bool)> {
        let len = if self.extended {
            len
        } else {
            len.min(u32::MAX as u64 & !511).max(1)
        };
        let cookie = self.request(CMD_BLOCK_STATUS, offset, len)?;
        let mut first = None;
        loop {
            let (flags, kind, p) = self.chunk(cookie)?;
            let run = match kind {
                5 if p.len() >= 12 && be32(&p) == self.meta_id => {
                    Some((be32(&p[4..]) as u64, be32(&p[8..]) as u64))
                }
                6 if p.len() >= 24 && be32(&p) == self.meta_id => {
                    Some((be64(&p[8..]), be64(&p[16..])))
                }
                0 => None,
                k => return Err(proto(format!("unexpected block status reply type {k}"))),
            };
            if first.is_none() {
                first = run;
            }
            if flags & FLAG_DONE != 0 {
                break;
            }
        }
        let (n, state) = first.ok_or_else(|| proto("block status without extents"))?;
        if n == 0 {
            return Err(proto(format!("empty block status extent at {offset}")));
        }
        Ok((n.min(len), state & STATE_ZERO != 0))
    }
}

impl Drop for NbdClient {
    fn drop(&mut self) {
        let _ = self.request(CMD_DISC, 0, 0);
    }
}

fn server_error(errno: u32, msg: &str) -> io::Error {
    let name = match errno {
        1 => "EPERM",
        5 => "EIO",
        12 => "ENOMEM",
        22 => "EINVAL",
        28 => "ENOSPC",
        75 => "EOVERFLOW",
        95 => "ENOTSUP",
        108 => "ESHUTDOWN",
        _ => "error",
    };
    let kind = if errno == 5 {
        io::ErrorKind::InvalidData
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(
        kind,
        format!("the image reader reported {name} ({errno}) {msg}")
            .trim_end()
            .to_string(),
    )
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4"))
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8"))
}
