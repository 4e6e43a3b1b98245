//! Request routing and the non-streaming endpoints: discovery (legacy and
//! aggregated v2), list with paging and selectors, get, Status errors and
//! fault injection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::selector::{FieldSelector, LabelSelector, walk};
use crate::store::{Entry, ObjKey, Stored};
use crate::util::CONTINUE_TOKEN;
use crate::{Fault, RecordedRequest, ResourceDef, Shared, lock, watch};

const JSON: &str = "application/json";
const V2_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const V2BETA1_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Decodes an `application/x-www-form-urlencoded` query string.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Parsed query parameters of a resource request.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

/// The JSON body of a Kubernetes `Status` failure.
pub(crate) fn status_body(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

/// A Status failure response.
pub(crate) fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        JSON,
        &status_body(code, reason, message, details),
    )
}

/// The conventional Status reason for an HTTP code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn not_found() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn bad_request(message: &str) -> Response<Body> {
    status_response(400, "BadRequest", message, None)
}

fn json_response(code: StatusCode, content_type: &str, body: &Value) -> Response<Body> {
    bytes_response(
        code,
        content_type,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

fn bytes_response(code: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = code;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        res.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    res
}

/// Takes the next queued fault of a class, if any.
fn take_fault(shared: &Shared, discovery: bool) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    if discovery {
        faults.discovery.pop_front()
    } else {
        faults.resource.pop_front()
    }
}

/// Applies a fault: a Status response, or (for a hang) waits until released
/// and then drops the connection without answering.
async fn apply_fault(shared: &Shared, kill: &Notify, fault: Fault) -> Response<Body> {
    match fault {
        Fault::Fail {
            status,
            retry_after,
        } => {
            let reason = reason_for(status);
            let details = retry_after.map(|s| json!({"retryAfterSeconds": s}));
            let mut res = status_response(
                status,
                reason,
                &format!("injected failure ({status} {reason})"),
                details,
            );
            if let Some(secs) = retry_after
                && let Ok(v) = HeaderValue::from_str(&secs.to_string())
            {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Fault::Hang => {
            let mut release = shared.hang_release.subscribe();
            let _ = release.changed().await;
            drop_connection(kill).await
        }
    }
}

/// Asks the connection task to close the connection, then never answers.
async fn drop_connection(kill: &Notify) -> Response<Body> {
    kill.notify_one();
    std::future::pending::<()>().await;
    unreachable!()
}

/// Entry point for every HTTP request.
pub(crate) async fn handle<B>(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    req: Request<B>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    tracing::debug!(method = %req.method(), %path, %query, "fake apiserver request");
    shared.record(RecordedRequest {
        method: req.method().to_string(),
        path: path.clone(),
        query: query.clone(),
        accept: accept.clone(),
    });
    if req.method() != Method::GET {
        return status_response(
            405,
            "MethodNotAllowed",
            "the fake apiserver only serves GET requests",
            None,
        );
    }
    let params = Params {
        pairs: parse_query(&query),
    };
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let accept = accept.as_deref().unwrap_or("");
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz"] => {
            bytes_response(StatusCode::OK, "text/plain", Bytes::from_static(b"ok"))
        }
        ["version"] | ["api"] | ["apis"] | ["api", _] | ["apis", _] | ["apis", _, _] => {
            if let Some(fault) = take_fault(&shared, true) {
                return apply_fault(&shared, &kill, fault).await;
            }
            discovery(&shared, &segs, accept)
        }
        ["api", version, rest @ ..] => {
            resource(&shared, &kill, "", version, rest, &params, accept).await
        }
        ["apis", group, version, rest @ ..] => {
            resource(&shared, &kill, group, version, rest, &params, accept).await
        }
        _ => not_found(),
    }
}

/// Orders API versions like Kubernetes: GA > beta > alpha, higher numbers
/// first, then anything else alphabetically.
fn version_priority(v: &str) -> (u8, u64, u64, String) {
    let parse = || -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let rest = &rest[digits.len()..];
        if rest.is_empty() {
            return Some((3, major, 0));
        }
        let (level, n) = if let Some(n) = rest.strip_prefix("beta") {
            (2, n)
        } else if let Some(n) = rest.strip_prefix("alpha") {
            (1, n)
        } else {
            return None;
        };
        Some((level, major, n.parse().ok()?))
    };
    match parse() {
        Some((level, major, minor)) => (level, major, minor, String::new()),
        None => (0, 0, 0, v.to_string()),
    }
}

/// Served versions of a group, most preferred first.
fn group_versions(shared: &Shared, group: &str) -> Vec<String> {
    let state = shared.state();
    let mut versions: Vec<String> = state
        .served
        .keys()
        .filter(|(g, _, _)| g == group)
        .map(|(_, v, _)| v.clone())
        .collect();
    versions.dedup();
    versions.sort_by(|a, b| {
        let (pa, pb) = (version_priority(a), version_priority(b));
        (pb.0, pb.1, pb.2)
            .cmp(&(pa.0, pa.1, pa.2))
            .then_with(|| pa.3.cmp(&pb.3))
    });
    versions
}

fn served_in(shared: &Shared, group: &str, version: &str) -> Vec<ResourceDef> {
    shared
        .state()
        .served
        .values()
        .filter(|d| d.group == group && d.version == version)
        .cloned()
        .collect()
}

fn singular(def: &ResourceDef) -> String {
    def.kind.to_lowercase()
}

const VERBS: [&str; 3] = ["get", "list", "watch"];

fn api_group_json(shared: &Shared, group: &str) -> Option<Value> {
    let versions = group_versions(shared, group);
    let first = versions.first()?;
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    Some(json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(first),
    }))
}

fn resource_list_json(shared: &Shared, group: &str, version: &str) -> Value {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = served_in(shared, group, version)
        .iter()
        .map(|d| {
            json!({
                "name": d.plural,
                "singularName": singular(d),
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": VERBS,
            })
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// One `APIGroupDiscovery` entry of aggregated discovery.
fn group_discovery_json(shared: &Shared, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = served_in(shared, group, v)
                .iter()
                .map(|d| {
                    json!({
                        "resource": d.plural,
                        "responseKind": {"group": group, "version": v, "kind": d.kind},
                        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": singular(d),
                        "verbs": VERBS,
                    })
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": versions})
}

/// Which aggregated discovery version the Accept header prefers, if any.
/// Media ranges are taken in order; the first one this server can produce wins.
fn negotiate_aggregated(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let parts: Vec<&str> = range.split(';').map(str::trim).collect();
        let mime = parts.first().copied().unwrap_or("");
        let param = |name: &str| {
            parts
                .iter()
                .skip(1)
                .find_map(|p| p.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        };
        if mime != JSON && mime != "application/*" && mime != "*/*" {
            continue;
        }
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return None,
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2")) => {
                return Some("v2");
            }
            (Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                return Some("v2beta1");
            }
            _ => continue,
        }
    }
    None
}

fn discovery(shared: &Shared, segs: &[&str], accept: &str) -> Response<Body> {
    let aggregated = if shared.options.aggregated_discovery {
        negotiate_aggregated(accept)
    } else {
        None
    };
    let ok = |v: Value| json_response(StatusCode::OK, JSON, &v);
    match segs {
        ["version"] => ok(json!({
            "major": "1",
            "minor": "34",
            "gitVersion": "v1.34.0-fake",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        })),
        ["api"] => match aggregated {
            Some(av) => aggregated_response(
                av,
                vec![group_discovery_json(shared, "", &["v1".to_string()])],
            ),
            None => ok(
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ),
        },
        ["api", "v1"] => ok(resource_list_json(shared, "", "v1")),
        ["apis"] => {
            let groups: Vec<String> = {
                let state = shared.state();
                let mut g: Vec<String> = state
                    .served
                    .keys()
                    .map(|(g, _, _)| g.clone())
                    .filter(|g| !g.is_empty())
                    .collect();
                g.dedup();
                g
            };
            match aggregated {
                Some(av) => {
                    let items = groups
                        .iter()
                        .map(|g| group_discovery_json(shared, g, &group_versions(shared, g)))
                        .collect();
                    aggregated_response(av, items)
                }
                None => {
                    let groups: Vec<Value> = groups
                        .iter()
                        .filter_map(|g| api_group_json(shared, g))
                        .collect();
                    ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
                }
            }
        }
        ["apis", group] => match api_group_json(shared, group) {
            Some(mut g) => {
                g["kind"] = json!("APIGroup");
                g["apiVersion"] = json!("v1");
                ok(g)
            }
            None => not_found(),
        },
        ["apis", group, version] => {
            if group_versions(shared, group).iter().any(|v| v == version) {
                ok(resource_list_json(shared, group, version))
            } else {
                not_found()
            }
        }
        _ => not_found(),
    }
}

fn aggregated_response(version: &str, items: Vec<Value>) -> Response<Body> {
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    let ct = if version == "v2" {
        V2_CONTENT_TYPE
    } else {
        V2BETA1_CONTENT_TYPE
    };
    json_response(StatusCode::OK, ct, &body)
}

/// How objects are rendered: whole, or as `PartialObjectMetadata` when the
/// client asked for metadata only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Render {
    Full,
    Metadata,
}

impl Render {
    pub(crate) fn from_accept(accept: &str) -> Self {
        if accept.contains("as=PartialObjectMetadata") {
            Render::Metadata
        } else {
            Render::Full
        }
    }

    /// One object in this rendering: the stored bytes, or a small
    /// `PartialObjectMetadata` built from its metadata.
    pub(crate) fn object_bytes(self, obj: &Stored) -> Bytes {
        match self {
            Render::Full => obj.json.clone(),
            Render::Metadata => Bytes::from(
                serde_json::to_vec(&json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.meta.clone(),
                }))
                .unwrap_or_default(),
            ),
        }
    }
}

/// The object filter shared by list and watch.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) fields: FieldSelector,
    pub(crate) labels: LabelSelector,
}

impl Filter {
    fn from_params(
        namespace: Option<&str>,
        name: Option<&str>,
        params: &Params,
    ) -> Result<Self, String> {
        Ok(Self {
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            fields: FieldSelector::parse(params.get("fieldSelector").unwrap_or(""))?,
            labels: LabelSelector::parse(params.get("labelSelector").unwrap_or(""))?,
        })
    }

    /// Whether an object at `key` passes the filter. Only field selectors
    /// on paths outside `metadata` need the whole object parsed.
    pub(crate) fn matches(&self, key: &ObjKey, obj: &Stored) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == key.0)
            && self.name.as_ref().is_none_or(|n| *n == key.1)
            && (self.labels.is_empty() || self.labels.matches_labels(obj.meta.get("labels")))
            && (self.fields.is_empty()
                || self.fields.matches_with(|path| match path.split_first() {
                    Some((first, rest)) if first == "metadata" => walk(&obj.meta, rest),
                    _ => walk(obj.parsed(), path),
                }))
    }

    fn has_selectors(&self) -> bool {
        !self.fields.is_empty() || !self.labels.is_empty()
    }
}

/// Handles `/api/v1/...` and `/apis/{group}/{version}/...` below the group version.
async fn resource(
    shared: &Arc<Shared>,
    kill: &Notify,
    group: &str,
    version: &str,
    rest: &[&str],
    params: &Params,
    accept: &str,
) -> Response<Body> {
    let lookup = |plural: &str| {
        shared
            .state()
            .served
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    };
    // (definition, namespace, name)
    let route = match rest {
        [plural] => lookup(plural).map(|d| (d, None, None)),
        ["namespaces", ns, plural] => lookup(plural)
            .filter(|d| d.namespaced)
            .map(|d| (d, Some(*ns), None)),
        ["namespaces", ns, plural, name] => lookup(plural)
            .filter(|d| d.namespaced)
            .map(|d| (d, Some(*ns), Some(*name))),
        [plural, name] => lookup(plural)
            .filter(|d| !d.namespaced)
            .map(|d| (d, None, Some(*name))),
        _ => None,
    };
    let Some((def, namespace, name)) = route else {
        return not_found();
    };
    if let Some(fault) = take_fault(shared, false) {
        return apply_fault(shared, kill, fault).await;
    }
    let render = Render::from_accept(accept);
    let filter = match Filter::from_params(namespace, name, params) {
        Ok(f) => f,
        Err(msg) => return bad_request(&msg),
    };
    if params.flag("watch") {
        return watch::watch(shared.clone(), def, filter, params, render);
    }
    match name {
        Some(name) => get_one(shared, &def, namespace, name, render),
        None => list(shared, kill, &def, &filter, params, render).await,
    }
}

fn get_one(
    shared: &Shared,
    def: &ResourceDef,
    namespace: Option<&str>,
    name: &str,
    render: Render,
) -> Response<Body> {
    let key = (namespace.unwrap_or("").to_string(), name.to_string());
    let obj = shared.state().store(&def.key()).objects.get(&key).cloned();
    match obj {
        Some(obj) => bytes_response(StatusCode::OK, JSON, render.object_bytes(&obj)),
        None => {
            let resource = if def.group.is_empty() {
                def.plural.clone()
            } else {
                format!("{}.{}", def.plural, def.group)
            };
            status_response(
                404,
                "NotFound",
                &format!("{resource} \"{name}\" not found"),
                Some(json!({"name": name, "group": def.group, "kind": def.plural})),
            )
        }
    }
}

/// Decoded continue token: snapshot resourceVersion and last returned key.
fn decode_continue(token: &str) -> Option<(u64, ObjKey)> {
    let raw = CONTINUE_TOKEN.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let rv = v.get("rv")?.as_u64()?;
    let ns = v.get("ns")?.as_str()?.to_string();
    let name = v.get("name")?.as_str()?.to_string();
    Some((rv, (ns, name)))
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": rv, "ns": key.0, "name": key.1});
    CONTINUE_TOKEN.encode(serde_json::to_vec(&v).unwrap_or_default())
}

async fn list(
    shared: &Shared,
    kill: &Notify,
    def: &ResourceDef,
    filter: &Filter,
    params: &Params,
    render: Render,
) -> Response<Body> {
    let reports_server = shared.state().reports_server.contains_key(&def.key());
    if reports_server {
        return unpaged_list(shared, def, filter, render);
    }
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request("invalid limit"),
    };
    let token = match params.get("continue").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => {
            if shared.reset_continue.load(Ordering::SeqCst) {
                return drop_connection(kill).await;
            }
            match decode_continue(t) {
                Some(tok) => Some(tok),
                None => {
                    return bad_request(
                        "continue key is not valid: incorrect encoded start resourceVersion",
                    );
                }
            }
        }
    };
    // Collect the page under the lock (cloning only its Arcs); render outside it.
    let (snapshot_rv, page, more, remaining) = {
        let mut state = shared.state();
        let current = state.rv;
        let store = state.store(&def.key());
        // Continue pages walk the live objects merged with the older states of
        // whatever changed since the snapshot, so a page costs O(log n + page
        // + changes) to find, plus O(remaining) to count what is left.
        let (snapshot_rv, candidates): (u64, Entries<'_>) = match &token {
            Some((rv, after)) => match store.snapshot_after(*rv, after) {
                Ok(items) => (*rv, Box::new(items)),
                Err(_) => return expired_continue(),
            },
            None => {
                let iter: Entries<'_> = match &filter.namespace {
                    Some(ns) => Box::new(
                        store
                            .objects
                            .range((ns.clone(), String::new())..)
                            .take_while(|(k, _)| k.0 == *ns),
                    ),
                    None => Box::new(store.objects.iter()),
                };
                (current, iter)
            }
        };
        let mut matching = candidates.filter(|(k, v)| filter.matches(k, v));
        let take = if limit > 0 { limit } else { usize::MAX };
        let page: Vec<(ObjKey, Arc<Stored>)> = matching
            .by_ref()
            .take(take)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let remaining = matching.count();
        (snapshot_rv, page, remaining > 0, remaining)
    };
    let mut meta = json!({"resourceVersion": snapshot_rv.to_string()});
    if more && let Some((last, _)) = page.last() {
        meta["continue"] = json!(encode_continue(snapshot_rv, last));
        if !filter.has_selectors() {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    let (api_version, kind) = match render {
        Render::Full => (def.api_version(), format!("{}List", def.kind)),
        Render::Metadata => (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
        ),
    };
    let items: Vec<Bytes> = page
        .iter()
        .map(|(_, obj)| render.object_bytes(obj))
        .collect();
    let size = items.iter().map(|b| b.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(256 + size);
    body.extend_from_slice(b"{\"apiVersion\":");
    body.extend_from_slice(&serde_json::to_vec(&api_version).unwrap_or_default());
    body.extend_from_slice(b",\"kind\":");
    body.extend_from_slice(&serde_json::to_vec(&kind).unwrap_or_default());
    body.extend_from_slice(b",\"metadata\":");
    body.extend_from_slice(&serde_json::to_vec(&meta).unwrap_or_default());
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    bytes_response(StatusCode::OK, JSON, Bytes::from(body))
}

/// A list the way Kyverno's reports-server answers it: every matching
/// object in one response (no `limit`, no `continue`), resourceVersion "1".
/// The body is written in chunks of about 256 KiB as it is sent, so that a
/// benchmark serving 50k reports does not hold the whole response.
fn unpaged_list(
    shared: &Shared,
    def: &ResourceDef,
    filter: &Filter,
    render: Render,
) -> Response<Body> {
    const CHUNK: usize = 256 * 1024;
    let items: Vec<Arc<Stored>> = {
        let mut state = shared.state();
        let store = state.store(&def.key());
        store
            .objects
            .iter()
            .filter(|(k, v)| filter.matches(k, v))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let head = json!({
        "apiVersion": def.api_version(),
        "kind": format!("{}List", def.kind),
        "metadata": {"resourceVersion": "1"},
    });
    let mut head = serde_json::to_vec(&head).unwrap_or_default();
    head.pop(); // the closing brace; items follow
    head.extend_from_slice(b",\"items\":[");
    let mut next = Some(head);
    let mut items = items.into_iter().enumerate();
    let chunks = std::iter::from_fn(move || {
        let mut buf = next.take()?;
        while buf.len() < CHUNK {
            let Some((i, obj)) = items.next() else {
                buf.extend_from_slice(b"]}");
                return Some(Ok::<_, std::io::Error>(Bytes::from(buf)));
            };
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(&render.object_bytes(&obj));
        }
        next = Some(Vec::with_capacity(CHUNK + 64 * 1024));
        Some(Ok(Bytes::from(buf)))
    });
    let mut res = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    res
}

/// 410 for a continue token whose snapshot is no longer available.
fn expired_continue() -> Response<Body> {
    status_response(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. \
         You can start a new list without the continue parameter.",
        None,
    )
}

/// Stored objects in key order, borrowed from the store.
type Entries<'a> = Box<dyn Iterator<Item = Entry<'a>> + 'a>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query(
            "fieldSelector=reason%3DFail%2Cmetadata.namespace%3Dx&watch=true&labelSelector=a+in+%28b%29",
        );
        assert_eq!(
            q[0],
            (
                "fieldSelector".into(),
                "reason=Fail,metadata.namespace=x".into()
            )
        );
        assert_eq!(q[1], ("watch".into(), "true".into()));
        assert_eq!(q[2], ("labelSelector".into(), "a in (b)".into()));
        assert_eq!(
            parse_query("a=%E2%9C%93%zz"),
            [("a".into(), "\u{2713}%zz".into())]
        );
    }

    #[test]
    fn version_ordering() {
        let mut v = vec![
            "v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1", "v2alpha3",
        ];
        v.sort_by(|a, b| {
            let (pa, pb) = (version_priority(a), version_priority(b));
            (pb.0, pb.1, pb.2)
                .cmp(&(pa.0, pa.1, pa.2))
                .then_with(|| pa.3.cmp(&pb.3))
        });
        assert_eq!(
            v,
            [
                "v2", "v1", "v1beta2", "v1beta1", "v2alpha3", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn accept_negotiation() {
        let kube = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate_aggregated(kube), Some("v2"));
        assert_eq!(
            negotiate_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            ),
            Some("v2beta1")
        );
        assert_eq!(negotiate_aggregated("application/json"), None);
        assert_eq!(negotiate_aggregated(""), None);
        assert_eq!(
            negotiate_aggregated(
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            None
        );
    }

    #[test]
    fn continue_token_round_trip() {
        let key = ("ns".to_string(), "name-1".to_string());
        let tok = encode_continue(42, &key);
        assert_eq!(decode_continue(&tok), Some((42, key)));
        assert_eq!(decode_continue("garbage!"), None);
    }
}
