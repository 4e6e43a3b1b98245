//! Compressed scrapes: the size of `/metrics` with and without gzip, and the
//! scrape latency of each, measured on the same rendering by alternating
//! the two kinds of request on two keep-alive connections.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::stats;

/// The measurements.
#[derive(Clone, Debug, Default)]
pub struct CompressedScrapes {
    /// Bytes of a plain answer.
    pub plain_bytes: usize,
    /// Bytes of a gzip answer.
    pub gzip_bytes: usize,
    /// The first gzip scrape of the rendering, which compresses it.
    pub first_gzip: Duration,
    /// Plain scrape latency p50 and p99.
    pub plain: (Duration, Duration),
    /// gzip scrape latency p50 and p99 (the rendering already compressed).
    pub gzip: (Duration, Duration),
    /// Whether the gzip answer decodes to the plain one (the `process_*`
    /// samples, read at each scrape, aside).
    pub same_text: bool,
}

/// A keep-alive connection that sends fixed extra request headers.
struct Conn {
    reader: BufReader<TcpStream>,
    headers: &'static str,
}

impl Conn {
    fn connect(addr: SocketAddr, headers: &'static str) -> Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            reader: BufReader::with_capacity(256 * 1024, s),
            headers,
        })
    }

    /// GET /metrics: the body and whether it came gzip-encoded.
    fn metrics(&mut self, body: &mut Vec<u8>) -> Result<bool> {
        body.clear();
        let req = format!(
            "GET /metrics HTTP/1.1\r\nHost: bench\r\n{}\r\n",
            self.headers
        );
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        if line.split_whitespace().nth(1) != Some("200") {
            bail!("GET /metrics: {}", line.trim());
        }
        let (mut length, mut chunked, mut gzip) = (None, false, false);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("connection closed in the headers");
            }
            let Some((k, v)) = line.trim_end().split_once(':') else {
                break;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "content-encoding" => gzip = v.eq_ignore_ascii_case("gzip"),
                _ => {}
            }
        }
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).context("chunk size")?;
                let start = body.len();
                body.resize(start + n, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if n == 0 {
                    break;
                }
            }
        } else {
            body.resize(length.context("no length")?, 0);
            self.reader.read_exact(body)?;
        }
        Ok(gzip)
    }
}

fn without_process(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("process_"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Measure `scrapes` scrapes of each kind against an exporter at `addr`
/// whose state does not change meanwhile.
pub fn measure(addr: SocketAddr, scrapes: usize) -> Result<CompressedScrapes> {
    let mut plain = Conn::connect(addr, "Accept: text/plain\r\n")?;
    let mut gzip = Conn::connect(addr, "Accept: text/plain\r\nAccept-Encoding: gzip\r\n")?;
    let (mut p, mut g) = (Vec::new(), Vec::new());
    let mut r = CompressedScrapes::default();
    let t = Instant::now();
    if !gzip.metrics(&mut g)? {
        bail!("the exporter did not answer with gzip");
    }
    r.first_gzip = t.elapsed();
    plain.metrics(&mut p)?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&g[..])
        .read_to_string(&mut text)
        .context("decoding the gzip answer")?;
    r.same_text = without_process(&text) == without_process(&String::from_utf8_lossy(&p));
    let (mut lp, mut lg) = (Vec::new(), Vec::new());
    for _ in 0..scrapes.max(1) {
        let t = Instant::now();
        plain.metrics(&mut p)?;
        lp.push(t.elapsed());
        let t = Instant::now();
        gzip.metrics(&mut g)?;
        lg.push(t.elapsed());
    }
    r.plain_bytes = p.len();
    r.gzip_bytes = g.len();
    r.plain = (
        stats::percentile(&mut lp, 0.5),
        stats::percentile(&mut lp, 0.99),
    );
    r.gzip = (
        stats::percentile(&mut lg, 0.5),
        stats::percentile(&mut lg, 0.99),
    );
    Ok(r)
}

/// Rows for a size's table (Markdown, the table's six columns).
pub fn rows(r: &CompressedScrapes) -> String {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| /metrics size, gzip (`Accept-Encoding: gzip`) | {:.1} KiB | plain {:.1} KiB | {:.1}× smaller | | {} |",
        r.gzip_bytes as f64 / 1024.0,
        r.plain_bytes as f64 / 1024.0,
        r.plain_bytes as f64 / r.gzip_bytes.max(1) as f64,
        if r.same_text {
            "decodes to the plain text"
        } else {
            "FAIL: differs from the plain text"
        }
    );
    let _ = writeln!(
        t,
        "| /metrics latency p50 / p99, gzip (plain, same run) | {} / {} | {} / {} | | | |",
        ms(r.gzip.0),
        ms(r.gzip.1),
        ms(r.plain.0),
        ms(r.plain.1)
    );
    let _ = writeln!(
        t,
        "| first gzip scrape of a rendering (compresses it once) | {} | | | | |",
        ms(r.first_gzip)
    );
    t
}
