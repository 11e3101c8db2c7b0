//! The export's NBD server reads whatever a client sends: negotiation and requests of any
//! shape must end the connection or be answered, never panic or hang.
#![no_main]
use bonsai_core::export::nbd::{serve_connection, Device, ReadFault, Run, Stream};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// 1 MiB: data in the first half, a hole in the second.
struct Disk;

impl Device for Disk {
    fn size(&self) -> u64 {
        1 << 20
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = (offset as usize + i) as u8);
        Ok(())
    }
    fn runs(&self, offset: u64, len: u64, max: usize) -> Vec<Run> {
        let mid = 1u64 << 19;
        let mut v = Vec::new();
        if offset < mid {
            v.push(Run { len: (mid - offset).min(len), hole: false });
        }
        let end = offset + len;
        if end > mid && v.len() < max {
            v.push(Run { len: end - offset.max(mid), hole: true });
        }
        v
    }
    fn prefetch(&self, _: u64, _: u64) -> Result<(), ReadFault> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let (mut client, server) = UnixStream::pair().unwrap();
    let mut drain = client.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = drain.read_to_end(&mut sink);
    });
    let _ = client.write_all(data);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = serve_connection(Stream::Unix(server), &Disk, "bonsai");
    reader.join().unwrap();
});
