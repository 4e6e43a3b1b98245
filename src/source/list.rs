//! Streamed lists: a list request whose response body is split into its
//! items as it arrives, each item decoded on its own, so a list of any size
//! never sits in memory whole. kube's own list reads the whole body into one
//! string before decoding it, which on a server that does not page (Kyverno's
//! reports-server answers a list of 50k reports with one ~370 MB response)
//! costs the size of the response plus its decode. Paging (`limit` and
//! `continue`) still applies where the server honours it.
//!
//! The split is a byte scanner (strings skipped with `memchr`) and each item
//! is decoded from its own slice, so the decoder borrows strings as it does
//! for a whole page. Decoding the stream with `serde_json::from_reader`
//! instead cost 2.62× the floor's CPU for a 50k-report sync, against 1.57×
//! for the scanner (docs/benchmarks.md, "Unpaged lists").

use futures::AsyncBufReadExt;
use kube::Client;
use kube::api::ListParams;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::SourceEvent;

/// Why a streamed list failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The request failed or the server answered with an error status.
    #[error("list request: {0}")]
    Request(#[from] kube::Error),
    /// The response body broke off.
    #[error("reading the list response: {0}")]
    Read(#[from] std::io::Error),
    /// An item or the list's metadata could not be decoded.
    #[error("decoding the list response: {0}")]
    Decode(#[from] serde_json::Error),
    /// The response is not a list object.
    #[error("the list response is malformed: {0}")]
    Malformed(&'static str),
    /// The receiver of the items went away; nothing to retry.
    #[error("the receiver of the list went away")]
    Closed,
}

impl ListError {
    /// Whether the server said the list's snapshot expired (410), so the list
    /// must start over.
    pub fn is_expired(&self) -> bool {
        matches!(self, ListError::Request(kube::Error::Api(s)) if s.code == 410)
    }
}

/// What lists and watches ask the server for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Whole objects.
    Objects,
    /// Only each object's metadata (`PartialObjectMetadata`, `Accept:
    /// application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`),
    /// for kinds whose metadata is all the exporter reads: Namespaces.
    Metadata,
}

/// List every object at `url_path` (as [`kube::Api::resource_url`] gives it)
/// in the given shape, following `continue` tokens, and send `wrap(item)` to
/// `tx` for each item as soon as it is decoded. Returns the list's
/// resourceVersion.
pub async fn list<K>(
    client: &Client,
    url_path: &str,
    shape: Shape,
    params: &ListParams,
    tx: &mpsc::Sender<SourceEvent>,
    mut wrap: impl FnMut(K) -> SourceEvent,
) -> Result<String, ListError>
where
    K: DeserializeOwned,
{
    let mut params = params.clone();
    loop {
        let request = kube::core::Request::new(url_path);
        let request = match shape {
            Shape::Objects => request.list(&params),
            Shape::Metadata => request.list_metadata(&params),
        }
        .map_err(kube::Error::BuildRequest)?;
        let mut body = Box::pin(client.request_stream(request).await?);
        let mut split = Splitter::default();
        let mut items = Vec::new();
        loop {
            let n = {
                let chunk = body.fill_buf().await?;
                split.feed(chunk, &mut items)?;
                chunk.len()
            };
            for item in items.drain(..) {
                tx.send(wrap(item)).await.map_err(|_| ListError::Closed)?;
            }
            if n == 0 {
                break;
            }
            body.consume_unpin(n);
        }
        let meta = split.finish()?;
        match meta.continue_token.filter(|t| !t.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(meta.resource_version.unwrap_or_default()),
        }
    }
}

/// The part of a list's `metadata` that drives paging and the watch after it.
#[derive(Debug, Default, Deserialize)]
struct ListMeta {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// What a captured value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Item,
    Metadata,
}

/// Splits a `…List` object, fed in chunks, into its `items` (decoded one by
/// one) and its `metadata`. Only the value being captured is buffered, and
/// only while it spans chunks.
#[derive(Default)]
struct Splitter {
    /// Open `{`/`[` (the list object itself is depth 1).
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Reading a key of the list object into `key`.
    reading_key: bool,
    key: Vec<u8>,
    /// After a `:` in the list object: the next value belongs to `key`.
    value_next: bool,
    /// Inside the list object's `items` array.
    in_items: bool,
    /// The value being captured and the depth it closes at.
    capturing: Option<(Target, usize)>,
    buf: Vec<u8>,
    /// The list object has closed.
    done: bool,
    meta: ListMeta,
}

impl Splitter {
    /// Scan one chunk; complete items are decoded into `items`.
    fn feed<K: DeserializeOwned>(
        &mut self,
        chunk: &[u8],
        items: &mut Vec<K>,
    ) -> Result<(), ListError> {
        let mut start = 0; // of the capture's bytes in this chunk
        let mut i = 0;
        while i < chunk.len() {
            if self.in_string {
                i = self.string_bytes(chunk, i);
                continue;
            }
            let b = chunk[i];
            if b.is_ascii_whitespace() {
                i += 1;
                continue;
            }
            if self.done {
                return Err(ListError::Malformed("data after the list object"));
            }
            if self.depth == 0 && b != b'{' {
                return Err(ListError::Malformed("not a JSON object"));
            }
            let expecting_item = self.depth == 2 && self.in_items && self.capturing.is_none();
            if expecting_item && !matches!(b, b'{' | b',' | b']') {
                return Err(ListError::Malformed("a list item is not an object"));
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 {
                        if self.value_next {
                            self.value_next = false;
                        } else {
                            self.reading_key = true;
                            self.key.clear();
                        }
                    }
                }
                b'{' | b'[' => {
                    if self.depth == 1 && self.value_next {
                        self.value_next = false;
                        if b == b'{' && self.key == b"metadata" {
                            self.capturing = Some((Target::Metadata, 1));
                            start = i;
                        } else if b == b'[' && self.key == b"items" {
                            self.in_items = true;
                        }
                    } else if expecting_item {
                        self.capturing = Some((Target::Item, 2));
                        start = i;
                    }
                    self.depth += 1;
                }
                b'}' | b']' => self.close(chunk, start, i, items)?,
                b':' if self.depth == 1 => self.value_next = true,
                // A scalar value of the list object (a number, null, …).
                _ if self.depth == 1 => self.value_next = false,
                _ => {}
            }
            i += 1;
        }
        if self.capturing.is_some() {
            self.buf.extend_from_slice(&chunk[start..]);
        }
        Ok(())
    }

    /// Scan inside a string from `i`, up to its closing quote or the end of
    /// the chunk, keeping a key of the list object. Returns where to go on.
    #[inline]
    fn string_bytes(&mut self, chunk: &[u8], mut i: usize) -> usize {
        if self.escaped {
            self.escaped = false;
            return i + 1;
        }
        let Some(off) = memchr::memchr2(b'"', b'\\', &chunk[i..]) else {
            if self.reading_key {
                self.key.extend_from_slice(&chunk[i..]);
            }
            return chunk.len();
        };
        if self.reading_key {
            self.key.extend_from_slice(&chunk[i..i + off]);
        }
        i += off;
        if chunk[i] == b'\\' {
            self.escaped = true;
        } else {
            self.in_string = false;
            self.reading_key = false;
        }
        i + 1
    }

    /// A closing bracket at `i`: the end of a captured value (decoded into
    /// `items` or the metadata; its bytes in this chunk begin at `start`),
    /// of `items`, or of the list object.
    #[inline]
    fn close<K: DeserializeOwned>(
        &mut self,
        chunk: &[u8],
        start: usize,
        i: usize,
        items: &mut Vec<K>,
    ) -> Result<(), ListError> {
        self.depth = self
            .depth
            .checked_sub(1)
            .ok_or(ListError::Malformed("unbalanced brackets"))?;
        if let Some((target, at)) = self.capturing
            && self.depth == at
        {
            self.capturing = None;
            let piece = if self.buf.is_empty() {
                &chunk[start..=i]
            } else {
                self.buf.extend_from_slice(&chunk[start..=i]);
                &self.buf[..]
            };
            match target {
                Target::Item => items.push(serde_json::from_slice(piece)?),
                Target::Metadata => self.meta = serde_json::from_slice(piece)?,
            }
            self.buf.clear();
        }
        if self.depth == 1 {
            self.in_items = false;
        }
        self.done = self.depth == 0;
        Ok(())
    }

    /// The list's metadata, once the whole body was fed.
    fn finish(self) -> Result<ListMeta, ListError> {
        if !self.done {
            return Err(ListError::Malformed("the response ended early"));
        }
        Ok(self.meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `text` in chunks of `size` bytes.
    fn split(text: &str, size: usize) -> Result<(Vec<serde_json::Value>, ListMeta), ListError> {
        let mut s = Splitter::default();
        let mut items = Vec::new();
        for chunk in text.as_bytes().chunks(size) {
            s.feed(chunk, &mut items)?;
        }
        Ok((items, s.finish()?))
    }

    #[test]
    fn items_and_metadata_are_found_across_any_chunking() {
        let text = r#" {"kind":"XList","items":[{"a":"}]\"{[","b":[1,{"c":2}]},
            {"metadata":{"name":"x"}}],"metadata":{"resourceVersion":"7","continue":"c"},
            "x":{"items":[5],"metadata":{"continue":"no"}},"n":null,"m":1.5} "#;
        for size in [1, 2, 3, 7, 64, 4096] {
            let (items, meta) = split(text, size).expect("valid");
            assert_eq!(
                items,
                [
                    serde_json::json!({"a":"}]\"{[","b":[1,{"c":2}]}),
                    serde_json::json!({"metadata":{"name":"x"}})
                ],
                "chunks of {size}"
            );
            assert_eq!(meta.resource_version.as_deref(), Some("7"));
            assert_eq!(meta.continue_token.as_deref(), Some("c"));
        }
        let (items, meta) = split(r#"{"items":null,"metadata":null}"#, 5).expect("valid");
        assert!(items.is_empty() && meta.resource_version.is_none());
        let (items, _) = split(r#"{"items":[]}"#, 5).expect("valid");
        assert!(items.is_empty());
    }

    #[test]
    fn malformed_bodies_fail() {
        for text in [
            r#"{"items":[{"a":1}"#,
            r#"{"items":[1,2]}"#,
            r#"{"items":["x"]}"#,
            r#"[{"a":1}]"#,
            r#"{"items":[]}}"#,
            r#"{"items":[]} {}"#,
            r#"{"items":[{"a":}]}"#,
        ] {
            assert!(split(text, 3).is_err(), "{text}");
        }
    }
}
