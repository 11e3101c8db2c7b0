//! Content-defined chunking (FastCDC 2020) and zero detection.
//!
//! The chunker runs over any `Read` with one fixed buffer, so memory is constant whatever
//! the image size, and cut points depend only on the bytes — never on how the reader
//! happened to split them (a property test pins this). All-zero chunks are reported as
//! such so that callers turn them into holes without hashing or storing them.
//!
//! Cut points are only computed once at least `max` bytes are buffered (or at end of
//! input), so every cut the FastCDC slice API returns is final.

use crate::image::DiskReader;
use std::io::{self, Read};

/// Which algorithm places cut points; recorded in every recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChunkerKind {
    /// FastCDC as published in 2020 (the `fastcdc` crate's `v2020`), normalization level 1.
    FastCdc2020,
    /// Fixed-size chunks of `avg` bytes (min = avg = max); cheap, but a shifted byte
    /// breaks dedup for the rest of the file.
    Fixed,
}

impl ChunkerKind {
    /// Byte used for this kind in the recipe header.
    pub fn code(self) -> u8 {
        match self {
            ChunkerKind::FastCdc2020 => 1,
            ChunkerKind::Fixed => 2,
        }
    }

    /// Inverse of [`ChunkerKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(ChunkerKind::FastCdc2020),
            2 => Some(ChunkerKind::Fixed),
            _ => None,
        }
    }
}

/// Chunker parameters; part of the recipe so a seed can be chunked exactly like the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkerParams {
    /// Algorithm.
    pub kind: ChunkerKind,
    /// Smallest chunk (except the last of an image).
    pub min: u32,
    /// Target average chunk.
    pub avg: u32,
    /// Largest chunk; also the largest plaintext a block may hold.
    pub max: u32,
}

/// Largest chunk any recipe may declare; bounds every allocation driven by input.
pub const MAX_CHUNK: u32 = 16 * 1024 * 1024;

/// Parameters that cannot produce valid chunks.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunker parameters min={min} avg={avg} max={max}: {why}")]
pub struct ChunkerParamsError {
    min: u32,
    avg: u32,
    max: u32,
    why: &'static str,
}

impl ChunkerParams {
    /// FastCDC with the usual spread: min = avg/4, max = avg*4.
    pub fn fastcdc(avg: u32) -> Self {
        ChunkerParams {
            kind: ChunkerKind::FastCdc2020,
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        }
    }

    /// Fixed-size chunks.
    pub fn fixed(size: u32) -> Self {
        ChunkerParams {
            kind: ChunkerKind::Fixed,
            min: size,
            avg: size,
            max: size,
        }
    }

    /// Checks the bounds the algorithm needs; recipes are validated with this too.
    pub fn validate(&self) -> Result<(), ChunkerParamsError> {
        let err = |why| ChunkerParamsError {
            min: self.min,
            avg: self.avg,
            max: self.max,
            why,
        };
        if self.max > MAX_CHUNK {
            return Err(err("max exceeds 16 MiB"));
        }
        match self.kind {
            ChunkerKind::Fixed => {
                if self.avg == 0 || self.min != self.avg || self.max != self.avg {
                    return Err(err("fixed chunks need min = avg = max > 0"));
                }
            }
            ChunkerKind::FastCdc2020 => {
                use fastcdc::v2020 as f;
                if !(f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&self.min)
                    || !(f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&self.avg)
                    || !(f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&self.max)
                {
                    return Err(err("outside the ranges FastCDC supports"));
                }
                if !(self.min <= self.avg && self.avg <= self.max) {
                    return Err(err("need min <= avg <= max"));
                }
            }
        }
        Ok(())
    }
}

impl Default for ChunkerParams {
    /// 64 KiB average FastCDC: the starting point DESIGN.md names.
    fn default() -> Self {
        ChunkerParams::fastcdc(64 * 1024)
    }
}

/// True when every byte is zero. Word-at-a-time so it runs near memory bandwidth.
pub fn is_zero(data: &[u8]) -> bool {
    let (head, body, tail) = unsafe { data.align_to::<u128>() };
    head.iter().all(|&b| b == 0)
        && body
            .chunks(16)
            .all(|c| c.iter().fold(0u128, |acc, &w| acc | w) == 0)
        && tail.iter().all(|&b| b == 0)
}

/// One chunk, borrowed from the chunker's buffer until the next call.
#[derive(Debug)]
pub struct Chunk<'a> {
    /// Offset of the chunk in the image.
    pub offset: u64,
    /// The bytes.
    pub data: &'a [u8],
}

impl Chunk<'_> {
    /// Whether this chunk is a hole (all zeros).
    pub fn is_zero(&self) -> bool {
        is_zero(self.data)
    }
}

/// Streaming chunker over a reader, with one buffer of fixed size.
pub struct Chunker<R> {
    reader: R,
    params: ChunkerParams,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    offset: u64,
    /// FastCDC's small/large masks for `avg` at normalization level 1, computed once.
    masks: [u64; 2],
    /// Where FastCDC cuts a run of zeros that starts at a chunk boundary. The cut at
    /// position p depends only on the bytes before p, so when that many zeros follow,
    /// the chunk is known without rolling the hash over them (zeros are most of a disk).
    zero_cut: usize,
}

impl<R: Read> Chunker<R> {
    /// A chunker whose buffer holds several maximum-size chunks (fewer refills, fewer copies).
    pub fn new(reader: R, params: ChunkerParams) -> Self {
        let size = (params.max as usize * 4).max(4 * 1024 * 1024);
        let mut chunker = Chunker {
            reader,
            params,
            buf: vec![0; size],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            masks: {
                use fastcdc::v2020::{logarithm2, MASKS};
                let bits = logarithm2(params.avg.max(2)) as usize;
                [MASKS[(bits + 1).min(25)], MASKS[bits.saturating_sub(1)]]
            },
            zero_cut: 0,
        };
        chunker.zero_cut = match params.kind {
            ChunkerKind::Fixed => params.max as usize,
            ChunkerKind::FastCdc2020 => chunker.cdc_cut(&vec![0u8; params.max as usize]),
        };
        chunker
    }

    fn cdc_cut(&self, window: &[u8]) -> usize {
        let m = self.masks;
        let (_, cut) = fastcdc::v2020::cut(
            window,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            m[0],
            m[1],
            m[0] << 1,
            m[1] << 1,
        );
        cut.max(1)
    }

    /// How many zeros must follow a boundary for the next cut to be `zero_cut`. FastCDC
    /// decides a cut at p after hashing the byte at p (the next chunk's first byte), so a
    /// cut inside the window needs one zero more than the chunk; a cut at `max` (no match
    /// in a window of zeros) needs exactly `max` zeros.
    fn zeros_for_zero_cut(&self) -> u64 {
        if self.zero_cut < self.params.max as usize {
            self.zero_cut as u64 + 1
        } else {
            self.zero_cut as u64
        }
    }

    /// Bytes of input consumed into chunks so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.buf.len() && !self.eof {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at end of input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk<'_>>> {
        let max = self.params.max as usize;
        if self.end - self.start < max && !self.eof {
            self.fill()?;
        }
        let avail = self.end - self.start;
        if avail == 0 {
            return Ok(None);
        }
        let zero_cut = self.zero_cut;
        let need = self.zeros_for_zero_cut() as usize;
        let len = match self.params.kind {
            ChunkerKind::Fixed => avail.min(max),
            ChunkerKind::FastCdc2020
                if avail >= need && is_zero(&self.buf[self.start..self.start + need]) =>
            {
                zero_cut
            }
            ChunkerKind::FastCdc2020 => {
                self.cdc_cut(&self.buf[self.start..self.start + avail.min(max)])
            }
        };
        let offset = self.offset;
        let data = &self.buf[self.start..self.start + len];
        self.start += len;
        self.offset += len as u64;
        Ok(Some(Chunk { offset, data }))
    }
}

/// One piece of a disk as [`Chunker::next_piece`] yields it.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// `len` zero bytes at `offset`: one or more whole chunks that are all zeros. Known
    /// zeros of the disk's map are neither read nor scanned; adjacent holes may follow
    /// each other (a recipe merges them).
    Hole {
        /// Offset in the image.
        offset: u64,
        /// Length in bytes (at least 1).
        len: u64,
    },
    /// One chunk holding at least one non-zero byte, borrowed until the next call.
    Data {
        /// Offset in the image.
        offset: u64,
        /// The bytes.
        data: &'a [u8],
    },
}

impl Piece<'_> {
    /// Offset of the piece in the image.
    pub fn offset(&self) -> u64 {
        match self {
            Piece::Hole { offset, .. } | Piece::Data { offset, .. } => *offset,
        }
    }

    /// Length of the piece in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Hole { len, .. } => *len,
            Piece::Data { data, .. } => data.len() as u64,
        }
    }

    /// Never true: pieces are at least one byte (present for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Leading zero bytes of `data`, scanning word-sized steps where it can.
fn leading_zeros(data: &[u8]) -> usize {
    let mut n = 0;
    for block in data.chunks(4096) {
        if is_zero(block) {
            n += block.len();
        } else {
            return n + block.iter().position(|&b| b != 0).unwrap_or(block.len());
        }
    }
    n
}

impl<'a> Chunker<DiskReader<'a>> {
    /// A chunker over a disk that knows its holes. [`next_piece`](Self::next_piece) cuts
    /// exactly where [`next_chunk`](Self::next_chunk) would over the same bytes, but a run
    /// of known zeros costs nothing however long it is, so a thin disk chunks in time
    /// proportional to its data.
    pub fn over_disk(reader: DiskReader<'a>, params: ChunkerParams) -> Self {
        Chunker::new(reader, params)
    }

    /// The next piece, or `None` at the end of the disk.
    ///
    /// At a chunk boundary with Z zeros ahead (zeros already buffered, then the disk's
    /// known zeros if the buffer holds nothing else), every chunk that starts at a boundary
    /// with enough zeros after it is cut at `zero_cut`; the k such chunks that fit in Z are
    /// emitted as one hole of k × `zero_cut` bytes without reading or scanning the zeros.
    /// What remains (less than two chunks of zeros) goes through the ordinary cut.
    pub fn next_piece(&mut self) -> io::Result<Option<Piece<'_>>> {
        let zero_cut = self.zero_cut as u64;
        let buffered = self.end - self.start;
        let lead = leading_zeros(&self.buf[self.start..self.end]);
        let mut zeros = lead as u64;
        if lead == buffered {
            zeros += self.reader.zeros_ahead()?;
        }
        let need = self.zeros_for_zero_cut();
        if zeros >= need {
            // chunk i ends at (i + 1) * zero_cut and needs `need` zeros from its start
            let len = ((zeros - need) / zero_cut + 1) * zero_cut;
            let from_buf = len.min(buffered as u64) as usize;
            self.start += from_buf;
            self.reader.skip_zeros(len - from_buf as u64);
            let offset = self.offset;
            self.offset += len;
            return Ok(Some(Piece::Hole { offset, len }));
        }
        Ok(self.next_chunk()?.map(|c| {
            if is_zero(c.data) {
                Piece::Hole {
                    offset: c.offset,
                    len: c.data.len() as u64,
                }
            } else {
                Piece::Data {
                    offset: c.offset,
                    data: c.data,
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Disk, DiskExtent};
    use proptest::prelude::*;

    /// A reader that hands out at most `step` bytes per call.
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
    }
    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn cuts(reader: impl Read, params: ChunkerParams) -> Vec<(u64, usize)> {
        let mut c = Chunker::new(reader, params);
        let mut out = vec![];
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push((ch.offset, ch.data.len()));
        }
        out
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 1000]));
        let mut v = vec![0u8; 1000];
        for i in [0, 1, 15, 16, 17, 500, 999] {
            v[i] = 1;
            assert!(!is_zero(&v), "byte {i}");
            assert!(!is_zero(&v[1..]) || i == 0);
            v[i] = 0;
        }
    }

    #[test]
    fn chunks_cover_input_within_bounds() {
        let data = noise(3 * 1024 * 1024 + 17, 7);
        let p = ChunkerParams::fastcdc(16 * 1024);
        let cs = cuts(&data[..], p);
        let mut pos = 0;
        for (i, (off, len)) in cs.iter().enumerate() {
            assert_eq!(*off, pos);
            assert!(*len <= p.max as usize);
            if i + 1 < cs.len() {
                assert!(*len >= p.min as usize);
            }
            pos += *len as u64;
        }
        assert_eq!(pos, data.len() as u64);
    }

    #[test]
    fn zero_runs_become_zero_chunks() {
        let mut data = noise(200_000, 3);
        data.extend(vec![0u8; 2 * 1024 * 1024]);
        data.extend(noise(100_000, 4));
        let p = ChunkerParams::fastcdc(16 * 1024);
        let mut c = Chunker::new(&data[..], p);
        let mut zero_bytes = 0;
        while let Some(ch) = c.next_chunk().unwrap() {
            if ch.is_zero() {
                zero_bytes += ch.data.len();
            }
        }
        // All but the chunks straddling the edges of the run are holes.
        assert!(
            zero_bytes >= 2 * 1024 * 1024 - 2 * p.max as usize,
            "{zero_bytes}"
        );
    }

    #[test]
    fn fixed_chunks() {
        let data = noise(10_000, 1);
        let cs = cuts(&data[..], ChunkerParams::fixed(4096));
        assert_eq!(cs, vec![(0, 4096), (4096, 4096), (8192, 1808)]);
    }

    #[test]
    fn params_validation() {
        assert!(ChunkerParams::default().validate().is_ok());
        assert!(ChunkerParams::fixed(0).validate().is_err());
        assert!(ChunkerParams::fastcdc(64 * 1024 * 1024).validate().is_err());
        let mut p = ChunkerParams::fastcdc(4096);
        p.min = 8192;
        assert!(p.validate().is_err());
    }

    /// Data with long zero runs, the case the zero shortcut handles.
    fn holey(len: usize, seed: u64) -> Vec<u8> {
        let mut v = noise(len, seed);
        let mut x = seed as usize | 1;
        for _ in 0..4 {
            x = x.wrapping_mul(2654435761) % len.max(1);
            let run = (x * 7919) % 300_000;
            let end = (x + run).min(len);
            v[x..end].fill(0);
        }
        v
    }

    /// Cuts with adjacent all-zero chunks merged into one hole: what a recipe records.
    fn merged(pieces: impl IntoIterator<Item = (u64, u64, bool)>) -> Vec<(u64, u64, bool)> {
        let mut out: Vec<(u64, u64, bool)> = Vec::new();
        for (off, len, hole) in pieces {
            match out.last_mut() {
                Some(last) if hole && last.2 => last.1 += len,
                _ => out.push((off, len, hole)),
            }
        }
        out
    }

    fn read_path(data: &[u8], p: ChunkerParams) -> Vec<(u64, u64, bool)> {
        let mut c = Chunker::new(data, p);
        let mut v = vec![];
        while let Some(ch) = c.next_chunk().unwrap() {
            v.push((ch.offset, ch.data.len() as u64, ch.is_zero()));
        }
        merged(v)
    }

    fn reference(data: &[u8], p: ChunkerParams) -> Vec<(u64, u64, bool)> {
        merged(
            fastcdc::v2020::FastCDC::new(data, p.min, p.avg, p.max).map(|c| {
                (
                    c.offset as u64,
                    c.length as u64,
                    is_zero(&data[c.offset..][..c.length]),
                )
            }),
        )
    }

    fn disk_path(disk: &dyn Disk, p: ChunkerParams) -> Vec<(u64, u64, bool)> {
        let mut c = Chunker::over_disk(DiskReader::new(disk), p);
        let mut v = vec![];
        while let Some(piece) = c.next_piece().unwrap() {
            let hole = matches!(piece, Piece::Hole { .. });
            if let Piece::Data { data, .. } = &piece {
                assert!(!is_zero(data));
            }
            v.push((piece.offset(), piece.len(), hole));
        }
        merged(v)
    }

    /// A disk in memory: runs the map reports as known zeros, and data runs (which may
    /// hold zeros too, as real data does).
    struct MemDisk {
        /// (start, bytes) of data runs; `None` bytes mean a known-zero run of that length.
        runs: Vec<(u64, u64, Option<Vec<u8>>)>,
        size: u64,
    }

    impl MemDisk {
        fn new(layout: Vec<Option<Vec<u8>>>, zero_lens: &[u64]) -> Self {
            let (mut runs, mut pos, mut z) = (vec![], 0u64, zero_lens.iter().cycle());
            for item in layout {
                let len = item
                    .as_ref()
                    .map_or_else(|| *z.next().unwrap(), |d| d.len() as u64);
                if len > 0 {
                    runs.push((pos, len, item));
                    pos += len;
                }
            }
            MemDisk { runs, size: pos }
        }
        fn run(&self, pos: u64) -> &(u64, u64, Option<Vec<u8>>) {
            let i = self.runs.partition_point(|r| r.0 <= pos) - 1;
            &self.runs[i]
        }
        fn bytes(&self) -> Vec<u8> {
            let mut v = vec![0u8; self.size as usize];
            self.read_at(&mut v, 0).unwrap();
            v
        }
    }

    impl Disk for MemDisk {
        fn size(&self) -> u64 {
            self.size
        }
        fn extent_at(&self, pos: u64) -> io::Result<DiskExtent> {
            let (start, len, data) = self.run(pos);
            Ok(DiskExtent {
                len: start + len - pos,
                zero: data.is_none(),
            })
        }
        fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
            let mut done = 0;
            while done < buf.len() {
                let at = pos + done as u64;
                let (start, len, data) = self.run(at);
                let n = ((start + len - at) as usize).min(buf.len() - done);
                match data {
                    None => buf[done..done + n].fill(0),
                    Some(d) => {
                        let from = (at - start) as usize;
                        buf[done..done + n].copy_from_slice(&d[from..from + n]);
                    }
                }
                done += n;
            }
            Ok(())
        }
    }

    fn zero_cut_of(p: ChunkerParams) -> usize {
        Chunker::new(&[][..], p).zero_cut
    }

    /// FastCDC decides a cut after hashing the next chunk's first byte: a zero run of
    /// exactly `zero_cut` bytes at a boundary followed by data is not cut at `zero_cut`.
    #[test]
    fn zero_run_of_exactly_zero_cut_then_data() {
        for avg in [1024u32, 4096, 16384, 65536] {
            let p = ChunkerParams::fastcdc(avg);
            let zc = zero_cut_of(p);
            for extra in [0usize, 1, 2, 3, zc, zc + 1] {
                let mut data = vec![0u8; zc + extra];
                data.extend(noise(3 * p.max as usize, avg as u64));
                let want = reference(&data, p);
                assert_eq!(read_path(&data, p), want, "avg {avg} zc {zc} extra {extra}");
                let disk = MemDisk::new(
                    vec![None, Some(data[zc + extra..].to_vec())],
                    &[(zc + extra) as u64],
                );
                assert_eq!(
                    disk_path(&disk, p),
                    want,
                    "disk: avg {avg} zc {zc} extra {extra}"
                );
            }
        }
    }

    /// A 1 EiB disk with a few MiB of data chunks in time proportional to its data.
    #[test]
    fn exabyte_thin_disk_costs_its_data() {
        let p = ChunkerParams::default();
        let eib = 1u64 << 60;
        let layout = vec![
            Some(noise(1 << 20, 1)),
            None,
            Some(noise(3 << 20, 2)),
            None,
            Some(vec![0u8; 1 << 20]), // data run that holds zeros
            None,
        ];
        let disk = MemDisk::new(layout, &[eib / 3, eib / 3 + 12345, eib / 3 - 7]);
        let cuts = disk_path(&disk, p);
        let total: u64 = cuts.iter().map(|c| c.1).sum();
        assert_eq!(total, disk.size());
        let data: u64 = cuts.iter().filter(|c| !c.2).map(|c| c.1).sum();
        assert!(data <= (4 << 20) + 2 * p.max as u64, "{data}");
        assert!(cuts.len() < 200, "{}", cuts.len());
    }

    #[test]
    fn sparse_file_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&noise(700_000, 9), 5 << 20).unwrap();
        f.write_all_at(&noise(300_000, 10), 40 << 20).unwrap();
        drop(f);
        let data = std::fs::read(&path).unwrap();
        let disk = crate::image::RawDisk::new(std::fs::File::open(&path).unwrap(), 64 << 20);
        let p = ChunkerParams::fastcdc(16384);
        assert_eq!(disk_path(&disk, p), reference(&data, p));
    }

    fn layout_strategy() -> impl Strategy<Value = (Vec<Option<Vec<u8>>>, Vec<u64>)> {
        let run = prop_oneof![
            Just(None),
            (0usize..90_000, any::<u64>()).prop_map(|(n, s)| Some(noise(n, s))),
            (0usize..70_000).prop_map(|n| Some(vec![0u8; n])),
            (0usize..50_000, any::<u64>()).prop_map(|(n, s)| {
                let mut v = noise(n, s);
                v.truncate(n / 3);
                v.extend(vec![0u8; n - n / 3]);
                Some(v)
            }),
        ];
        (
            proptest::collection::vec(run, 0..12),
            proptest::collection::vec(0u64..400_000, 1..5),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The disk path (known zeros skipped) cuts exactly where the plain read path and
        /// the fastcdc crate's iterator cut, once adjacent holes are merged as a recipe does.
        #[test]
        fn disk_path_equals_read_path_and_reference(
            (layout, zeros) in layout_strategy(),
            avg in prop::sample::select(vec![1024u32, 4096, 16384]),
            fixed: bool,
        ) {
            let p = if fixed { ChunkerParams::fixed(avg) } else { ChunkerParams::fastcdc(avg) };
            let disk = MemDisk::new(layout, &zeros);
            let bytes = disk.bytes();
            let via_disk = disk_path(&disk, p);
            prop_assert_eq!(&via_disk, &read_path(&bytes, p));
            if !fixed {
                prop_assert_eq!(&via_disk, &reference(&bytes, p));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Our buffered chunker (with its zero-run shortcut) cuts exactly where the fastcdc
        /// crate's own iterator cuts over the whole input.
        #[test]
        fn same_cuts_as_reference_fastcdc(len in 0usize..600_000, seed: u64, avg in prop::sample::select(vec![1024u32, 4096, 16384])) {
            let data = holey(len, seed);
            let p = ChunkerParams::fastcdc(avg);
            prop_assert_eq!(read_path(&data, p), reference(&data, p));
        }

        #[test]
        fn boundaries_independent_of_read_sizes(len in 0usize..400_000, seed: u64, step in 1usize..70_000) {
            let data = noise(len, seed);
            let p = ChunkerParams::fastcdc(4096);
            prop_assert_eq!(cuts(&data[..], p), cuts(Dribble { data: &data, step }, p));
        }
    }
}
