//! Streamed lists: a list request whose response body is decoded item by
//! item as it arrives, so a list of any size never sits in memory whole.
//! kube's own list reads the whole body into one string before decoding it,
//! which on a server that does not page (Kyverno's reports-server answers a
//! list of 50k reports with one ~370 MB response) costs the size of the
//! response plus its decode. Paging (`limit`/`continue`) still applies where
//! the server honours it. See docs/benchmarks.md for the peak this bounds.

use std::fmt;
use std::io::BufReader;
use std::marker::PhantomData;

use kube::Client;
use kube::api::ListParams;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};
use serde::Deserialize;
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::io::SyncIoBridge;

/// Bytes read from the connection at a time while decoding.
const READ_BUFFER: usize = 64 * 1024;

/// Why a streamed list failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The request failed or the server answered with an error status.
    #[error("list request: {0}")]
    Request(#[from] kube::Error),
    /// The response was not a list of the expected objects.
    #[error("decoding the list response: {0}")]
    Decode(#[from] serde_json::Error),
    /// The decoding thread failed.
    #[error("list decoder: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The consumer of the items went away; nothing to retry.
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

/// List every object at `url_path` (as [`kube::Api::resource_url`] gives it),
/// following `continue` tokens, and hand each object to `emit` as soon as it
/// is decoded; `emit` returns false when its receiver is gone. Decoding runs
/// on a blocking thread reading the body as it arrives. Returns the list's
/// resourceVersion.
pub async fn list<K, F>(
    client: &Client,
    url_path: &str,
    params: &ListParams,
    emit: F,
) -> Result<String, ListError>
where
    K: DeserializeOwned + Send + 'static,
    F: FnMut(K) -> bool + Send + 'static,
{
    let mut params = params.clone();
    let mut emit = emit;
    loop {
        let request = kube::core::Request::new(url_path)
            .list(&params)
            .map_err(kube::Error::BuildRequest)?;
        let body = Box::pin(client.request_stream(request).await?.compat());
        let bridge = SyncIoBridge::new(body);
        let (returned, decoded) = tokio::task::spawn_blocking(move || {
            let mut closed = false;
            let reader = BufReader::with_capacity(READ_BUFFER, bridge);
            let mut de = serde_json::Deserializer::from_reader(reader);
            let seed = ListSeed::<K, F> {
                emit: &mut emit,
                closed: &mut closed,
                item: PhantomData,
            };
            let decoded = seed
                .deserialize(&mut de)
                .and_then(|meta| de.end().map(|()| meta));
            let decoded = match decoded {
                Err(_) if closed => Err(ListError::Closed),
                other => other.map_err(ListError::Decode),
            };
            (emit, decoded)
        })
        .await?;
        emit = returned;
        let meta = decoded?;
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

/// Decodes a `…List` object, emitting its items one at a time.
struct ListSeed<'a, K, F> {
    emit: &'a mut F,
    closed: &'a mut bool,
    item: PhantomData<fn() -> K>,
}

impl<'de, K, F> DeserializeSeed<'de> for ListSeed<'_, K, F>
where
    K: DeserializeOwned,
    F: FnMut(K) -> bool,
{
    type Value = ListMeta;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ListMeta, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, K, F> Visitor<'de> for ListSeed<'_, K, F>
where
    K: DeserializeOwned,
    F: FnMut(K) -> bool,
{
    type Value = ListMeta;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ListMeta, A::Error> {
        let mut meta = ListMeta::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => meta = map.next_value::<Option<ListMeta>>()?.unwrap_or_default(),
                "items" => map.next_value_seed(ItemsSeed::<K, F> {
                    emit: &mut *self.emit,
                    closed: &mut *self.closed,
                    item: PhantomData,
                })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(meta)
    }
}

/// Decodes `items` (an array, or null for none), emitting each item.
struct ItemsSeed<'a, K, F> {
    emit: &'a mut F,
    closed: &'a mut bool,
    item: PhantomData<fn() -> K>,
}

impl<'de, K, F> DeserializeSeed<'de> for ItemsSeed<'_, K, F>
where
    K: DeserializeOwned,
    F: FnMut(K) -> bool,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K, F> Visitor<'de> for ItemsSeed<'_, K, F>
where
    K: DeserializeOwned,
    F: FnMut(K) -> bool,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<K>()? {
            if !(self.emit)(item) {
                *self.closed = true;
                return Err(de::Error::custom("the receiver of the list went away"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> (Result<ListMeta, serde_json::Error>, Vec<u32>) {
        let mut got = Vec::new();
        let mut emit = |n: u32| {
            got.push(n);
            got.len() < 3
        };
        let mut closed = false;
        let mut de = serde_json::Deserializer::from_reader(text.as_bytes());
        let meta = ListSeed::<u32, _> {
            emit: &mut emit,
            closed: &mut closed,
            item: PhantomData,
        }
        .deserialize(&mut de);
        (meta, got)
    }

    #[test]
    fn items_are_emitted_in_order_and_metadata_kept_wherever_it_is() {
        let (meta, got) = decode(
            r#"{"kind":"XList","items":[1,2],"metadata":{"resourceVersion":"7","continue":"c"},"x":{"y":[]}}"#,
        );
        let meta = meta.expect("valid");
        assert_eq!(got, [1, 2]);
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert_eq!(meta.continue_token.as_deref(), Some("c"));
        let (meta, got) = decode(r#"{"items":null,"metadata":null}"#);
        assert!(meta.expect("valid").resource_version.is_none());
        assert!(got.is_empty());
    }

    #[test]
    fn a_bad_item_or_a_gone_receiver_stops_the_list() {
        let (meta, got) = decode(r#"{"items":[1,"two",3]}"#);
        assert!(meta.is_err());
        assert_eq!(got, [1]);
        let (meta, got) = decode(r#"{"items":[1,2,3,4,5]}"#);
        assert!(meta.is_err());
        assert_eq!(got, [1, 2, 3]);
    }
}
