//! gzip-compressed scrapes: a rendering is compressed once, and each scrape
//! only appends its small per-request tail (the `process_*` families).
//!
//! A gzip answer is one gzip member (RFC 1952): a header, one DEFLATE stream
//! and a trailer with the CRC-32 and length of the whole text. The cached
//! [`Prefix`] holds the header and the rendering's DEFLATE blocks, ended
//! with a sync flush so that they stop on a byte boundary and are not final;
//! [`Prefix::finish`] compresses the tail into the final block with a fresh
//! compressor (its back-references stay within the tail, so the blocks may
//! follow any others) and writes the trailer. Any gzip reader, not only
//! those that accept several members, reads the answer as one text.

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The fixed gzip header: magic, DEFLATE, no flags, no mtime, no extra
/// flags, OS "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The compression level: the fastest. It makes the benchmark's 50k-report
/// rendering 16 times smaller (1,612 KiB to 101 KiB) in 3.2 ms, once per
/// rendering (docs/benchmarks.md, "Compressed scrapes"). Higher levels were
/// not measured.
const LEVEL: Compression = Compression::fast();

/// A rendering compressed once: gzip header and non-final DEFLATE blocks.
#[derive(Debug)]
pub struct Prefix {
    bytes: Bytes,
    crc: Crc,
}

impl Clone for Prefix {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            crc: copy(&self.crc),
        }
    }
}

/// A copy of a CRC state (`Crc` is not `Clone`): the CRC of nothing
/// combined with it.
fn copy(crc: &Crc) -> Crc {
    let mut c = Crc::new();
    c.combine(crc);
    c
}

impl Prefix {
    /// Compress `text`, the cached part of every answer.
    pub fn new(text: &[u8]) -> Self {
        let mut out = Vec::with_capacity(HEADER.len() + text.len() / 8 + 64);
        out.extend_from_slice(&HEADER);
        deflate(
            &mut Compress::new(LEVEL, false),
            text,
            FlushCompress::Sync,
            &mut out,
        );
        let mut crc = Crc::new();
        crc.update(text);
        Self {
            bytes: Bytes::from(out),
            crc,
        }
    }

    /// The compressed prefix, shared by every answer.
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// The rest of one answer: `tail` in the final DEFLATE block, then the
    /// trailer of the whole text (prefix and tail).
    pub fn finish(&self, tail: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(tail.len() / 2 + 64);
        deflate(
            &mut Compress::new(LEVEL, false),
            tail,
            FlushCompress::Finish,
            &mut out,
        );
        let mut crc = copy(&self.crc);
        crc.update(tail);
        let mut out = BytesMut::from(&out[..]);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32, as RFC 1952 defines it.
        out.extend_from_slice(&crc.amount().to_le_bytes());
        out.freeze()
    }
}

/// Run `input` through `c` with `flush`, appending to `out`, until the
/// compressor has written everything: for a sync flush, until the input is
/// consumed and a call leaves output room unused; for finish, until the
/// stream ends.
fn deflate(c: &mut Compress, input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
    let finish = matches!(flush, FlushCompress::Finish);
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let read = (c.total_in() - start) as usize;
        // Compressing from memory into memory does not fail (flate2 reports
        // errors only for streams used after an error); stop if it did.
        let Ok(status) = c.compress_vec(&input[read..], out, flush) else {
            return;
        };
        let consumed = (c.total_in() - start) as usize == input.len();
        let done = if finish {
            status == Status::StreamEnd
        } else {
            consumed && out.len() < out.capacity()
        };
        if done {
            return;
        }
    }
}

/// Whether an `Accept-Encoding` value accepts gzip (RFC 9110 §12.5.3):
/// `gzip` or `x-gzip` with a non-zero weight, or, when neither is named,
/// `*` with a non-zero weight. Codings are case-insensitive; a malformed
/// weight counts as 1, as most servers read it.
pub fn accepts_gzip<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    let mut named = None;
    let mut star = None;
    for item in values.into_iter().flat_map(|v| v.split(',')) {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(1.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            // The highest weight given to gzip wins.
            named = Some(named.map_or(q, |n: f32| n.max(q)));
        } else if coding == "*" {
            star = Some(q);
        }
    }
    named.or(star).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(parts: &[Bytes]) -> Vec<u8> {
        let all: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        let mut out = Vec::new();
        // GzDecoder reads one member only: the answer must be a single one.
        flate2::read::GzDecoder::new(&all[..])
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn prefix_and_tail_decode_to_the_whole_text() {
        let text: String = (0..20_000)
            .map(|i| {
                format!(
                    "policyreport_results{{namespace=\"ns-{}\",policy=\"p\"}} {i}\n",
                    i % 50
                )
            })
            .collect();
        let prefix = Prefix::new(text.as_bytes());
        assert!(prefix.bytes().len() < text.len() / 5, "compresses");
        for tail in ["", "process_threads 4\n", &"x".repeat(100_000)] {
            let answer = gunzip(&[prefix.bytes(), prefix.finish(tail.as_bytes())]);
            assert_eq!(answer, format!("{text}{tail}").into_bytes());
        }
        let empty = Prefix::new(b"");
        assert_eq!(gunzip(&[empty.bytes(), empty.finish(b"")]), b"");
        assert_eq!(gunzip(&[empty.bytes(), empty.finish(b"a\n")]), b"a\n");
    }

    #[test]
    fn negotiates_gzip() {
        let yes = [
            "gzip",
            "GZIP",
            "x-gzip",
            "gzip, deflate",
            "deflate;q=0.5, gzip;q=0.1",
            "*",
            "identity, *;q=0.5",
            "gzip;q=0, gzip;q=1",
            "gzip; q=1.0",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
        ];
        for v in yes {
            assert!(accepts_gzip([v]), "{v} accepts gzip");
        }
        let no = [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip; q=0.000",
            "*;q=0",
            "gzip;q=0, *",
            "gzipped",
        ];
        for v in no {
            assert!(!accepts_gzip([v]), "{v} refuses gzip");
        }
        assert!(accepts_gzip(["deflate", "gzip"]), "several header lines");
        assert!(!accepts_gzip(std::iter::empty()), "no header");
    }
}
