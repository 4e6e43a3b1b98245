//! Wire-level tests with a minimal HTTP/1.1 client: exact JSON shapes of
//! discovery, lists, Status errors and watch lines, headers, and how watch
//! streams end (cleanly vs. an aborted chunked body).

use std::time::Duration;

use fake_apiserver::{FakeApiServer, ResourceDef};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP response.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether a chunked body ended with its terminating zero-length chunk.
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one GET (or other method) with `Connection: close` and reads until EOF.
async fn request(server: &FakeApiServer, method: &str, target: &str, accept: Option<&str>) -> Resp {
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    let req =
        format!("{method} {target} HTTP/1.1\r\nHost: fake\r\n{accept}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // An error here (connection reset) is a valid way for the server to end;
    // whatever arrived before it is parsed.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if !chunked {
        return Resp {
            status,
            headers,
            body: rest.to_vec(),
            complete: true,
        };
    }
    let mut body = Vec::new();
    let mut pos = 0;
    let mut complete = false;
    while let Some(eol) = rest[pos..].windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[pos..pos + eol]).unwrap().trim(),
            16,
        )
        .unwrap();
        pos += eol + 2;
        if size == 0 {
            complete = true;
            break;
        }
        if pos + size > rest.len() {
            break;
        }
        body.extend_from_slice(&rest[pos..pos + size]);
        pos += size + 2;
    }
    Resp {
        status,
        headers,
        body,
        complete,
    }
}

fn reports() -> ResourceDef {
    ResourceDef::new(
        "wgpolicyk8s.io",
        "v1alpha2",
        "PolicyReport",
        "policyreports",
        true,
    )
}

#[tokio::test]
async fn discovery_documents_have_the_real_shapes() {
    let server = FakeApiServer::start().await.unwrap();
    server.serve(reports());
    let r = request(&server, "GET", "/api", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
    );
    let r = request(&server, "GET", "/apis", Some("application/json")).await;
    assert_eq!(
        r.json(),
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
            "name": "wgpolicyk8s.io",
            "versions": [{"groupVersion": "wgpolicyk8s.io/v1alpha2", "version": "v1alpha2"}],
            "preferredVersion": {"groupVersion": "wgpolicyk8s.io/v1alpha2", "version": "v1alpha2"},
        }]})
    );
    let r = request(&server, "GET", "/apis/wgpolicyk8s.io/v1alpha2", None).await;
    assert_eq!(
        r.json(),
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "wgpolicyk8s.io/v1alpha2",
            "resources": [{"name": "policyreports", "singularName": "policyreport", "namespaced": true,
                "kind": "PolicyReport", "verbs": ["get", "list", "watch"]}]})
    );
    let r = request(
        &server,
        "GET",
        "/apis",
        Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        ),
    )
    .await;
    assert_eq!(
        r.header("content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    let v = r.json();
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    assert_eq!(v["items"][0]["metadata"]["name"], "wgpolicyk8s.io");
    assert_eq!(
        v["items"][0]["versions"][0]["resources"][0]["scope"],
        "Namespaced"
    );

    let r = request(&server, "GET", "/apis/nope.io/v1/things", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource", "reason": "NotFound",
            "details": {}, "code": 404})
    );
    let r = request(
        &server,
        "DELETE",
        "/apis/wgpolicyk8s.io/v1alpha2/policyreports",
        None,
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["reason"], "MethodNotAllowed");
    assert!(server.request_count() >= 6);
}

#[tokio::test]
async fn list_and_status_bodies() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    let stored = server.apply(
        &def,
        json!({"metadata": {"name": "a", "namespace": "ns"}, "results": []}),
    );
    assert_eq!(stored["metadata"]["resourceVersion"], "2");
    assert!(
        stored["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let r = request(
        &server,
        "GET",
        "/apis/wgpolicyk8s.io/v1alpha2/policyreports",
        None,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReportList",
            "metadata": {"resourceVersion": "2"}, "items": [stored]})
    );

    server.fail_next(1, 429, Some(7));
    let r = request(
        &server,
        "GET",
        "/apis/wgpolicyk8s.io/v1alpha2/policyreports",
        None,
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    let v = r.json();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["code"], 429);
    assert_eq!(v["reason"], "TooManyRequests");
    assert_eq!(v["details"]["retryAfterSeconds"], 7);

    let r = request(
        &server,
        "GET",
        "/apis/wgpolicyk8s.io/v1alpha2/policyreports?continue=%21bad",
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
}

#[tokio::test]
async fn watch_lines_put_type_first_and_end_as_configured() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    server.apply(&def, json!({"metadata": {"name": "a", "namespace": "ns"}}));
    let path = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/ns/policyreports";

    // Replay from resourceVersion 1, then a clean end after timeoutSeconds.
    let r = request(
        &server,
        "GET",
        &format!("{path}?watch=1&resourceVersion=1&timeoutSeconds=1"),
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.complete, "timeout ends the chunked body cleanly");
    let text = r.text();
    assert!(
        text.starts_with("{\"type\":\"ADDED\",\"object\":{"),
        "{text}"
    );
    assert!(text.ends_with("}\n"));
    assert_eq!(text.lines().count(), 1);

    // A compacted resourceVersion yields exactly one ERROR line.
    server.apply(&def, json!({"metadata": {"name": "b", "namespace": "ns"}}));
    server.compact();
    let r = request(
        &server,
        "GET",
        &format!("{path}?watch=true&resourceVersion=1"),
        None,
    )
    .await;
    assert!(r.complete);
    let line: Value = serde_json::from_str(r.text().trim_end()).unwrap();
    assert_eq!(
        line,
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "too old resource version: 1 (3)", "reason": "Expired", "code": 410}})
    );
    assert!(r.text().starts_with("{\"type\":\"ERROR\""));

    // drop_watches aborts the body: no terminating chunk.
    let s2 = server.clone();
    let dropper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s2.drop_watches();
    });
    let r = request(
        &server,
        "GET",
        &format!("{path}?watch=true&resourceVersion=3&timeoutSeconds=5"),
        None,
    )
    .await;
    dropper.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.complete, "dropped watch must not end cleanly");

    // set_watch_drop_after ends cleanly after n events.
    server.set_watch_drop_after(Some(1));
    let r = request(
        &server,
        "GET",
        &format!("{path}?watch=true&resourceVersion=0&timeoutSeconds=5"),
        None,
    )
    .await;
    assert!(r.complete);
    assert_eq!(r.text().lines().count(), 1);
}
