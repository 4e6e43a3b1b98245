//! End-to-end tests of the fake API server driven by a real kube 5 client:
//! discovery, paged lists, the runtime watcher (initial list, live events,
//! re-list after 410, restart), fault injection and selectors.

use std::time::{Duration, Instant};

use fake_apiserver::{FakeApiServer, ResourceDef, ServerOptions};
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config, ResourceExt};
use serde_json::{Value, json};

type WatchItem<K> = Result<Event<K>, watcher::Error>;

fn reports() -> ResourceDef {
    ResourceDef::new(
        "wgpolicyk8s.io",
        "v1alpha2",
        "PolicyReport",
        "policyreports",
        true,
    )
}

fn api_resource(def: &ResourceDef) -> ApiResource {
    ApiResource {
        group: def.group.clone(),
        version: def.version.clone(),
        api_version: def.api_version(),
        kind: def.kind.clone(),
        plural: def.plural.clone(),
    }
}

fn config(server: &FakeApiServer) -> Config {
    Config::new(server.url().parse().expect("valid url"))
}

fn client(server: &FakeApiServer) -> Client {
    Client::try_from(config(server)).expect("client")
}

fn all(server: &FakeApiServer, def: &ResourceDef) -> Api<DynamicObject> {
    Api::all_with(client(server), &api_resource(def))
}

fn report(ns: &str, name: &str, extra: Value) -> Value {
    let mut v = json!({"metadata": {"name": name, "namespace": ns}, "summary": {"pass": 1}});
    if let (Value::Object(base), Value::Object(extra)) = (&mut v, extra) {
        base.extend(extra);
    }
    v
}

/// A short, comparable description of a watcher event.
fn describe<K: ResourceExt>(item: &WatchItem<K>) -> String {
    let id = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    match item {
        Ok(Event::Init) => "Init".into(),
        Ok(Event::InitApply(o)) => format!("InitApply({})", id(o)),
        Ok(Event::InitDone) => "InitDone".into(),
        Ok(Event::Apply(o)) => format!("Apply({})", id(o)),
        Ok(Event::Delete(o)) => format!("Delete({})", id(o)),
        Err(e) => format!("Err({e})"),
    }
}

/// The next watcher event, failing the test after 10 s of silence.
async fn next<K: ResourceExt, S: Stream<Item = WatchItem<K>> + Unpin>(s: &mut S) -> String {
    let item = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("watcher event within 10 s")
        .expect("watcher stream never ends");
    describe(&item)
}

/// The next `n` watcher events.
async fn take<K: ResourceExt, S: Stream<Item = WatchItem<K>> + Unpin>(
    s: &mut S,
    n: usize,
) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(s).await);
    }
    out
}

/// Skips events until one equal to `want` arrives, returning what was skipped.
async fn until<K: ResourceExt, S: Stream<Item = WatchItem<K>> + Unpin>(
    s: &mut S,
    want: &str,
) -> Vec<String> {
    let mut skipped = Vec::new();
    loop {
        let e = next(s).await;
        if e == want {
            return skipped;
        }
        assert!(skipped.len() < 1000, "never saw {want}: {skipped:?}");
        skipped.push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reflects_served_resources() {
    let server = FakeApiServer::start().await.unwrap();
    let client = client(&server);

    let err = kube::discovery::group(&client, "wgpolicyk8s.io")
        .await
        .err()
        .expect("group must be missing before it is served");
    assert!(err.to_string().contains("Missing Api Group"), "{err}");

    server.serve(reports());
    server.serve(ResourceDef::new(
        "wgpolicyk8s.io",
        "v1beta1",
        "PolicyReport",
        "policyreports",
        true,
    ));
    server.serve(ResourceDef::new(
        "wgpolicyk8s.io",
        "v1alpha2",
        "ClusterPolicyReport",
        "clusterpolicyreports",
        false,
    ));
    server.serve(ResourceDef::new("", "v1", "Namespace", "namespaces", false));

    let group = kube::discovery::group(&client, "wgpolicyk8s.io")
        .await
        .unwrap();
    assert_eq!(group.preferred_version(), Some("v1beta1"));
    let v1a2 = group.versioned_resources("v1alpha2");
    let (ar, caps) = v1a2
        .iter()
        .find(|(ar, _)| ar.plural == "policyreports")
        .expect("policyreports discovered");
    assert_eq!(ar.kind, "PolicyReport");
    assert_eq!(ar.api_version, "wgpolicyk8s.io/v1alpha2");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
    let cluster = v1a2
        .iter()
        .find(|(ar, _)| ar.plural == "clusterpolicyreports")
        .unwrap();
    assert_eq!(cluster.1.scope, kube::discovery::Scope::Cluster);

    // Full discovery, legacy and aggregated.
    let d = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    assert!(d.has_group("wgpolicyk8s.io"));
    let core = d.get("").expect("core group");
    assert!(
        core.recommended_resources()
            .iter()
            .any(|(ar, _)| ar.plural == "namespaces")
    );
    server.clear_requests();
    let agg = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    let g = agg.get("wgpolicyk8s.io").expect("aggregated group");
    assert_eq!(g.preferred_version(), Some("v1beta1"));
    assert_eq!(g.versioned_resources("v1alpha2").len(), 2);
    assert!(agg.has_group(""));
    let accepts: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.accept.clone())
        .collect();
    assert!(
        accepts
            .iter()
            .all(|a| a.contains("as=APIGroupDiscoveryList")),
        "{accepts:?}"
    );

    // A resource that goes away disappears from discovery and its routes 404.
    server.unserve("wgpolicyk8s.io", "v1beta1", "policyreports");
    let group = kube::discovery::group(&client, "wgpolicyk8s.io")
        .await
        .unwrap();
    assert_eq!(group.preferred_version(), Some("v1alpha2"));
    server.unserve("wgpolicyk8s.io", "v1alpha2", "policyreports");
    server.unserve("wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports");
    assert!(
        kube::discovery::group(&client, "wgpolicyk8s.io")
            .await
            .is_err()
    );
    let err = all(&server, &reports())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_list_returns_everything_consistently() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    for (ns, name) in [
        ("b", "r1"),
        ("a", "r2"),
        ("a", "r1"),
        ("c", "r0"),
        ("b", "r0"),
    ] {
        server.apply(&def, report(ns, name, json!({})));
    }
    let api = all(&server, &def);

    let mut lp = ListParams::default().limit(2);
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        first_rv.get_or_insert(page.metadata.resource_version.clone());
        assert_eq!(page.metadata.resource_version, *first_rv.as_ref().unwrap());
        seen.extend(
            page.items
                .iter()
                .map(|o| format!("{}/{}", o.namespace().unwrap(), o.name_any())),
        );
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(3));
            // Changes after the first page do not leak into later pages.
            server.delete(&def, Some("b"), "r1");
            server.apply(&def, report("b", "r5", json!({})));
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["a/r1", "a/r2", "b/r0", "b/r1", "c/r0"]);

    // A fresh list sees the current state.
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    assert_eq!(names, ["r1", "r2", "r0", "r5", "r0"]);

    // Continue tokens older than the compaction point are Expired.
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    server.apply(&def, report("z", "new", json!({})));
    server.compact();
    let err = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected 410, got {other}"),
    }

    // Namespaced route.
    let ns_api: Api<DynamicObject> =
        Api::namespaced_with(client(&server), "b", &api_resource(&def));
    let names: Vec<String> = ns_api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    assert_eq!(names, ["r0", "r5"]);
    assert_eq!(ns_api.get("r5").await.unwrap().name_any(), "r5");
    let err = ns_api.get("nope").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_initial_list_then_live_events() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    for i in 0..3 {
        server.apply(&def, report("ns", &format!("r{i}"), json!({})));
    }
    let mut w = watcher::watcher(all(&server, &def), watcher::Config::default()).boxed();
    assert_eq!(
        take(&mut w, 5).await,
        [
            "Init",
            "InitApply(ns/r0)",
            "InitApply(ns/r1)",
            "InitApply(ns/r2)",
            "InitDone"
        ]
    );
    server.apply(&def, report("ns", "r3", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/r3)");
    server.apply(&def, report("ns", "r1", json!({"summary": {"fail": 1}})));
    assert_eq!(next(&mut w).await, "Apply(ns/r1)");
    assert!(server.delete(&def, Some("ns"), "r0"));
    assert_eq!(next(&mut w).await, "Delete(ns/r0)");

    // The watcher used the documented kube 5 defaults.
    let reqs = server.requests();
    let list = reqs
        .iter()
        .find(|r| !r.is_watch() && r.path.ends_with("/policyreports"))
        .unwrap();
    assert_eq!(list.param("limit").as_deref(), Some("500"));
    assert_eq!(list.param("resourceVersion"), None);
    let watch = reqs.iter().find(|r| r.is_watch()).unwrap();
    assert_eq!(watch.param("allowWatchBookmarks").as_deref(), Some("true"));
    assert_eq!(watch.param("timeoutSeconds").as_deref(), Some("290"));
    // Three objects written after the initial resourceVersion 1.
    assert_eq!(watch.param("resourceVersion").as_deref(), Some("4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_compaction() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    for name in ["a", "b", "c"] {
        server.apply(&def, report("ns", name, json!({})));
    }
    let mut w = watcher::watcher(all(&server, &def), watcher::Config::default()).boxed();
    until(&mut w, "InitDone").await;
    server.apply(&def, report("ns", "d", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/d)");

    // The watch goes down; while nobody watches, "b" is deleted and history is compacted.
    server.drop_watches();
    assert!(server.delete(&def, Some("ns"), "b"));
    server.compact();

    let skipped = until(&mut w, "Init").await;
    assert!(
        skipped
            .iter()
            .all(|e| e.contains("too old resource version")),
        "only the 410 error may precede the re-list: {skipped:?}"
    );
    assert_eq!(
        take(&mut w, 4).await,
        [
            "InitApply(ns/a)",
            "InitApply(ns/c)",
            "InitApply(ns/d)",
            "InitDone"
        ]
    );
    server.apply(&def, report("ns", "e", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/e)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_resumes_without_relist_after_plain_drop() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    server.apply(&def, report("ns", "a", json!({})));
    let mut w = watcher::watcher(all(&server, &def), watcher::Config::default()).boxed();
    until(&mut w, "InitDone").await;
    let watches_before = server.requests().iter().filter(|r| r.is_watch()).count();
    server.drop_watches();
    server.apply(&def, report("ns", "b", json!({})));
    // The missed event is replayed from history on the resumed watch.
    assert_eq!(next(&mut w).await, "Apply(ns/b)");
    let watches_after = server.requests().iter().filter(|r| r.is_watch()).count();
    assert_eq!(watches_after, watches_before + 1);

    // Streams ended by set_watch_drop_after also resume seamlessly.
    server.set_watch_drop_after(Some(1));
    server.drop_watches();
    for name in ["c", "d", "e"] {
        server.apply(&def, report("ns", name, json!({})));
    }
    assert_eq!(
        take(&mut w, 3).await,
        ["Apply(ns/c)", "Apply(ns/d)", "Apply(ns/e)"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_url_and_objects_and_watcher_recovers() {
    let server = FakeApiServer::start().await.unwrap();
    let url = server.url();
    let def = reports();
    server.serve(def.clone());
    server.apply(&def, report("ns", "a", json!({})));
    server.apply(&def, report("ns", "b", json!({})));
    let mut w = watcher::watcher(all(&server, &def), watcher::Config::default()).boxed();
    until(&mut w, "InitDone").await;

    server.restart().await.unwrap();
    assert_eq!(server.url(), url);
    server.delete(&def, Some("ns"), "a");

    let skipped = until(&mut w, "Init").await;
    assert!(skipped.len() <= 3, "{skipped:?}");
    assert_eq!(take(&mut w, 2).await, ["InitApply(ns/b)", "InitDone"]);
    server.apply(&def, report("ns", "c", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/c)");

    // While stopped, connections are refused; after resume the same URL works.
    server.stop().await;
    assert!(
        all(&server, &def)
            .list(&ListParams::default())
            .await
            .is_err()
    );
    server.resume().await.unwrap();
    let n = all(&server, &def)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_are_seen_then_recovered_from() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    server.apply(&def, report("ns", "a", json!({})));
    let api = all(&server, &def);

    // 500 is not retried by kube: the caller sees it once.
    server.fail_next(1, 500, None);
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500 && s.reason == "InternalError"),
        "{err}"
    );
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // 429 with Retry-After: kube's default client retries transparently after the delay.
    let before = server.request_count();
    server.fail_next(1, 429, Some(1));
    let t = Instant::now();
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(server.request_count() - before, 2);

    // Without default retries the caller sees the 429 itself, then recovers.
    let mut cfg = config(&server);
    cfg.default_retry = false;
    let raw: Api<DynamicObject> =
        Api::all_with(Client::try_from(cfg).unwrap(), &api_resource(&def));
    server.fail_next(1, 429, Some(1));
    let err = raw.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 429 && s.reason == "TooManyRequests"),
        "{err}"
    );
    assert_eq!(
        raw.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // The watcher surfaces list and watch failures as errors and carries on.
    server.fail_next(1, 500, None);
    let mut w = watcher::watcher(raw.clone(), watcher::Config::default()).boxed();
    assert_eq!(next(&mut w).await, "Init");
    assert!(
        next(&mut w)
            .await
            .starts_with("Err(failed to perform initial object list")
    );
    until(&mut w, "InitDone").await;
    server.fail_next(1, 503, None);
    server.drop_watches();
    assert!(
        next(&mut w)
            .await
            .starts_with("Err(failed to start watching")
    );
    server.apply(&def, report("ns", "b", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/b)");

    // Discovery faults are queued separately.
    server.fail_next_discovery(1, 503, None);
    let err = kube::discovery::group(
        &Client::try_from({
            let mut c = config(&server);
            c.default_retry = false;
            c
        })
        .unwrap(),
        "wgpolicyk8s.io",
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_requests_time_out_on_the_client_and_later_ones_work() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    server.apply(&def, report("ns", "a", json!({})));
    let mut cfg = config(&server);
    cfg.read_timeout = Some(Duration::from_millis(300));
    let api: Api<DynamicObject> =
        Api::all_with(Client::try_from(cfg).unwrap(), &api_resource(&def));

    server.hang_next(1);
    let t = Instant::now();
    assert!(api.list(&ListParams::default()).await.is_err());
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // A connection reset in the middle of a paged list.
    server.apply(&def, report("ns", "b", json!({})));
    server.reset_list_after_first_page(true);
    let first = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    assert!(
        api.list(&ListParams::default().limit(1).continue_token(&token))
            .await
            .is_err()
    );
    server.reset_list_after_first_page(false);
    let second = api
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items[0].name_any(), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_and_label_selectors_on_list_and_watch() {
    let server = FakeApiServer::start().await.unwrap();
    let def = ResourceDef::new("", "v1", "Event", "events", true);
    server.serve(def.clone());
    let ev = |ns: &str, name: &str, reason: &str| json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": name}}, "reason": reason});
    server.apply(&def, ev("x", "e1", "PolicyViolation"));
    server.apply(&def, ev("x", "e2", "Other"));
    server.apply(&def, ev("y", "e3", "PolicyViolation"));
    let api = all(&server, &def);

    let names = |l: kube::core::ObjectList<DynamicObject>| -> Vec<String> {
        l.items.iter().map(|o| o.name_any()).collect()
    };
    let lp = ListParams::default().fields("reason=PolicyViolation");
    assert_eq!(names(api.list(&lp).await.unwrap()), ["e1", "e3"]);
    let lp = ListParams::default().fields("reason!=PolicyViolation,metadata.namespace=x");
    assert_eq!(names(api.list(&lp).await.unwrap()), ["e2"]);
    let lp = ListParams::default().labels("app in (e2,e3)");
    assert_eq!(names(api.list(&lp).await.unwrap()), ["e2", "e3"]);
    let lp = ListParams::default()
        .fields("reason=PolicyViolation")
        .limit(1);
    let page = api.list(&lp).await.unwrap();
    assert_eq!(
        page.metadata.remaining_item_count, None,
        "unknown with selectors"
    );
    let err = api
        .list(&ListParams::default().fields("garbage"))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 400));

    let cfg = watcher::Config::default().fields("reason=PolicyViolation");
    let mut w = watcher::watcher(api.clone(), cfg).boxed();
    assert_eq!(
        take(&mut w, 4).await,
        ["Init", "InitApply(x/e1)", "InitApply(y/e3)", "InitDone"]
    );
    server.apply(&def, ev("x", "e4", "Other")); // filtered out
    server.apply(&def, ev("x", "e5", "PolicyViolation"));
    assert_eq!(next(&mut w).await, "Apply(x/e5)");
    // Leaving the selector looks like a delete, entering it like an add.
    server.apply(&def, ev("x", "e1", "Resolved"));
    assert_eq!(next(&mut w).await, "Delete(x/e1)");
    server.apply(&def, ev("x", "e2", "PolicyViolation"));
    assert_eq!(next(&mut w).await, "Apply(x/e2)");

    // Namespaced watch plus label selector.
    let ns_api: Api<DynamicObject> =
        Api::namespaced_with(client(&server), "y", &api_resource(&def));
    let mut w = watcher::watcher(ns_api, watcher::Config::default().labels("app")).boxed();
    assert_eq!(
        take(&mut w, 3).await,
        ["Init", "InitApply(y/e3)", "InitDone"]
    );
    server.apply(
        &def,
        json!({"metadata": {"name": "nolabel", "namespace": "y"}}),
    );
    server.apply(&def, ev("x", "e6", "Other"));
    server.apply(&def, ev("y", "e7", "Other"));
    assert_eq!(next(&mut w).await, "Apply(y/e7)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_bookmarks_timeout_and_expiry() {
    let server = FakeApiServer::start_with(ServerOptions {
        bookmark_interval: Duration::from_millis(100),
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let def = reports();
    server.serve(def.clone());
    server.apply(&def, report("ns", "a", json!({})));
    let api = all(&server, &def);
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    // Bookmarks advance past events that the watcher does not care about.
    let other = ResourceDef::new("other.io", "v1", "Other", "others", false);
    server.apply(&other, json!({"metadata": {"name": "o"}}));
    let wp = WatchParams::default().timeout(1);
    let t = Instant::now();
    let events: Vec<_> = api.watch(&wp, &rv).await.unwrap().collect().await;
    let elapsed = t.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(events.len() >= 5, "{}", events.len());
    for e in &events {
        match e {
            Ok(WatchEvent::Bookmark(b)) => {
                assert_eq!(b.types.kind, "PolicyReport");
                assert_eq!(
                    b.metadata.resource_version,
                    server.resource_version().to_string()
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // Too old: one ERROR event with 410 Expired, then the stream ends.
    server.apply(&def, report("ns", "b", json!({})));
    server.compact();
    let wp = WatchParams::default().timeout(2);
    let events: Vec<_> = api.watch(&wp, &rv).await.unwrap().collect().await;
    assert_eq!(events.len(), 1);
    match &events[0] {
        Ok(WatchEvent::Error(s)) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
            assert!(
                s.message
                    .starts_with(&format!("too old resource version: {rv} (")),
                "{}",
                s.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // resourceVersion "0" starts with synthetic ADDED events for existing objects.
    let mut s = api
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    for name in ["a", "b"] {
        match s.next().await {
            Some(Ok(WatchEvent::Added(o))) => assert_eq!(o.name_any(), name),
            other => panic!("unexpected {other:?}"),
        }
    }
    server.apply(&def, report("ns", "c", json!({})));
    match s.next().await {
        Some(Ok(WatchEvent::Added(o))) => assert_eq!(o.name_any(), "c"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_and_metadata_watchers() {
    let server = FakeApiServer::start().await.unwrap();
    let def = reports();
    server.serve(def.clone());
    server.apply(&def, report("ns", "a", json!({})));
    server.apply(&def, report("ns", "b", json!({})));

    let cfg = watcher::Config::default().streaming_lists();
    let mut w = watcher::watcher(all(&server, &def), cfg).boxed();
    assert_eq!(
        take(&mut w, 4).await,
        ["Init", "InitApply(ns/a)", "InitApply(ns/b)", "InitDone"]
    );
    server.apply(&def, report("ns", "c", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/c)");

    let meta: Api<PartialObjectMeta<DynamicObject>> =
        Api::all_with(client(&server), &api_resource(&def));
    let list = meta.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 3);
    let mut w = watcher::watcher(meta, watcher::Config::default()).boxed();
    until(&mut w, "InitDone").await;
    server.apply(&def, report("ns", "d", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/d)");
    let accept = server
        .requests()
        .iter()
        .rev()
        .find(|r| r.is_watch())
        .and_then(|r| r.accept.clone())
        .unwrap();
    assert!(accept.contains("as=PartialObjectMetadata"), "{accept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_events_flow_in_order_and_lagging_watchers_resume() {
    let server = FakeApiServer::start_with(ServerOptions {
        watch_queue_capacity: 64,
        ..ServerOptions::default()
    })
    .await
    .unwrap();
    let def = reports();
    server.serve(def.clone());
    let mut w = watcher::watcher(all(&server, &def), watcher::Config::default()).boxed();
    assert_eq!(take(&mut w, 2).await, ["Init", "InitDone"]);
    server.apply(&def, report("ns", "first", json!({})));
    assert_eq!(next(&mut w).await, "Apply(ns/first)");

    // 3000 writes of ~8 KiB (more than socket buffers hold) while the
    // watcher is not polled: the server-side stream blocks, its queue of 64
    // overflows, the stream is closed, and the watcher resumes from history.
    let n = 3000;
    let padding = "x".repeat(8 * 1024);
    let t = Instant::now();
    for i in 0..n {
        let extra = json!({"i": i, "padding": padding});
        server.apply(&def, report("ns", &format!("r{}", i % 100), extra));
    }
    let mut count = 0;
    while count < n {
        match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
            Ok(Some(Ok(Event::Apply(o)))) => {
                assert_eq!(o.data["i"].as_u64(), Some(count), "events in order");
                count += 1;
            }
            other => panic!("unexpected {:?}", other.map(|o| o.map(|r| describe(&r)))),
        }
    }
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let watches = server.requests().iter().filter(|r| r.is_watch()).count();
    assert!(
        watches > 1,
        "the lagging watch should have been closed and resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_points_at_the_server() {
    let server = FakeApiServer::start().await.unwrap();
    let def = ResourceDef::new("", "v1", "ConfigMap", "configmaps", true);
    server.serve(def.clone());
    server.apply(
        &def,
        json!({"metadata": {"name": "cm"}, "data": {"k": "v"}}),
    );
    let dir = std::env::temp_dir().join(format!("fake-apiserver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("fake"));
    let cfg = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(cfg).unwrap();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::default_namespaced(client);
    let cm = cms.get("cm").await.unwrap();
    assert_eq!(cm.data.unwrap()["k"], "v");
    std::fs::remove_dir_all(&dir).unwrap();
    server.shutdown().await;
}
