//! Minimal HTTP/1.1 clients, enough for the exporter's and Prometheus's
//! answers: a keep-alive connection for polling and timing, and one-shot
//! GETs with request headers for tests that look at the answer's headers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One GET on a fresh [`HttpConn`]: status and body.
pub fn get_once(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    HttpConn::connect(addr)?.get(path)
}

/// A minimal HTTP/1.1 keep-alive client, enough for the exporter's answers
/// (Content-Length or chunked bodies).
pub struct HttpConn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl HttpConn {
    /// Connects.
    pub fn connect(addr: SocketAddr) -> std::io::Result<HttpConn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(HttpConn {
            addr,
            reader: BufReader::with_capacity(256 * 1024, s),
        })
    }

    /// GET `path`; returns the status and body. Reconnects once if the
    /// server closed the connection.
    pub fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let mut body = Vec::new();
        let status = self.get_into(path, &mut body)?;
        Ok((status, body))
    }

    /// Like [`get`](Self::get), reading the body into `body` (cleared first),
    /// so that a caller polling in a loop reuses one buffer.
    pub fn get_into(&mut self, path: &str, body: &mut Vec<u8>) -> std::io::Result<u16> {
        match self.try_get(path, body) {
            Ok(r) => Ok(r),
            Err(_) => {
                *self = HttpConn::connect(self.addr)?;
                self.try_get(path, body)
            }
        }
    }

    fn try_get(&mut self, path: &str, body: &mut Vec<u8>) -> std::io::Result<u16> {
        body.clear();
        let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/plain\r\n\r\n");
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                if k == "content-length" {
                    length = v.parse::<usize>().ok();
                } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                let start = body.len();
                body.resize(start + n, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.reader.read_exact(body)?;
        } else {
            self.reader.read_to_end(body)?;
        }
        Ok(status)
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection: status, content type
/// and the (de-chunked) body as text.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    let (status, fields, body) = http_get_bytes(addr, path, headers)?;
    let content_type = fields
        .into_iter()
        .find_map(|(k, v)| (k == "content-type").then_some(v))
        .unwrap_or_default();
    Ok((
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// An HTTP answer: status, headers (names lowercased) and body.
pub type RawAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP/1.1 GET over a fresh connection, keeping the body as
/// bytes (for compressed answers), de-chunked. Unlike [`HttpConn`] it sends
/// only the caller's headers (no `Accept`), asks the server to close, reads
/// to the end and returns the answer's headers: what tests of content
/// negotiation, compression and authentication look at.
pub fn http_get_bytes(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<RawAnswer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let fields: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if fields
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&rest[..eol]);
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || rest.len() < eol + 2 + n {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = rest.get(eol + 4 + n..).unwrap_or_default();
        }
        body = out;
    }
    Ok((status, fields, body))
}

/// Percent-encodes all but the unreserved characters, for a query string.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
