//! The reports-server mode, driven by a real kube 5 client: unpaged lists
//! with resourceVersion "1", watches that replay every object as ADDED for
//! any resourceVersion but ""/"0", no 410, no bookmarks, no deletions for a
//! gap, and dropped live events (another replica's writes).

use std::time::Duration;

use fake_apiserver::{FakeApiServer, ReportsServerMode, ResourceDef, ServerOptions};
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

fn reports() -> ResourceDef {
    ResourceDef::new(
        "wgpolicyk8s.io",
        "v1alpha2",
        "PolicyReport",
        "policyreports",
        true,
    )
}

fn api(server: &FakeApiServer, def: &ResourceDef) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: def.group.clone(),
        version: def.version.clone(),
        api_version: def.api_version(),
        kind: def.kind.clone(),
        plural: def.plural.clone(),
    };
    let config = Config::new(server.url().parse().expect("valid url"));
    Api::all_with(Client::try_from(config).expect("client"), &ar)
}

fn report(name: &str, pass: u64) -> serde_json::Value {
    json!({"metadata": {"name": name, "namespace": "ns"}, "summary": {"pass": pass}})
}

/// A server with bookmarks every 50 ms (so a missing bookmark shows) serving
/// `r-0`..`r-{n-1}` in reports-server mode.
async fn server(n: usize) -> (FakeApiServer, ResourceDef) {
    let server = FakeApiServer::start_with(ServerOptions {
        bookmark_interval: Duration::from_millis(50),
        ..ServerOptions::default()
    })
    .await
    .expect("server");
    let def = reports();
    server.serve(def.clone());
    for i in 0..n {
        server.apply(&def, report(&format!("r-{i}"), 1));
    }
    server.set_reports_server(&def, Some(ReportsServerMode::default()));
    (server, def)
}

fn describe(e: &WatchEvent<DynamicObject>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(s) => format!("ERROR {}", s.code),
    }
}

/// The events that arrive within `wait` (the stream may stay open).
async fn events_within<S>(stream: &mut S, wait: Duration) -> Vec<String>
where
    S: Stream<Item = kube::Result<WatchEvent<DynamicObject>>> + Unpin,
{
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(item)) = tokio::time::timeout_at(deadline, stream.next()).await {
        out.push(describe(&item.expect("a decodable event")));
    }
    out
}

#[tokio::test]
async fn lists_ignore_limit_and_continue_and_report_resource_version_1() {
    let (server, def) = server(25).await;
    let api = api(&server, &def);
    let list = api
        .list(&ListParams::default().limit(10))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 25, "one response with every object");
    assert_eq!(list.metadata.resource_version.as_deref(), Some("1"));
    assert_eq!(list.metadata.continue_, None);
    assert_eq!(list.metadata.remaining_item_count, None);
    // Objects keep their own resourceVersions (the counter writes advance).
    let rvs: Vec<u64> = list
        .items
        .iter()
        .map(|o| o.resource_version().expect("rv").parse().expect("number"))
        .collect();
    assert!(rvs.iter().all(|rv| *rv > 1), "{rvs:?}");
    // A continue token (from nowhere) is ignored, not decoded.
    let params = ListParams {
        continue_token: Some("garbage".into()),
        ..ListParams::default()
    };
    assert_eq!(api.list(&params).await.expect("list").items.len(), 25);
    // An empty kind lists fine.
    server.set_reports_server(&def, None);
    for i in 0..25 {
        server.delete(&def, Some("ns"), &format!("r-{i}"));
    }
    server.set_reports_server(&def, Some(ReportsServerMode::default()));
    let list = api.list(&ListParams::default()).await.expect("list");
    assert!(list.items.is_empty());
    assert_eq!(list.metadata.resource_version.as_deref(), Some("1"));
    // Off again: paging is back.
    server.set_reports_server(&def, None);
    server.apply(&def, report("a", 1));
    server.apply(&def, report("b", 1));
    let list = api
        .list(&ListParams::default().limit(1))
        .await
        .expect("list");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.continue_.is_some());
}

#[tokio::test]
async fn a_large_unpaged_list_arrives_whole() {
    let (server, def) = server(3000).await;
    let list = api(&server, &def)
        .list(&ListParams::default())
        .await
        .expect("list");
    let names: Vec<String> = list.items.iter().map(|o| o.name_any()).collect();
    let mut want: Vec<String> = (0..3000).map(|i| format!("r-{i}")).collect();
    want.sort();
    assert_eq!(names, want);
}

#[tokio::test]
async fn watch_from_0_sends_live_events_only_without_bookmarks() {
    let (server, def) = server(3).await;
    let api = api(&server, &def);
    for rv in ["0", ""] {
        let wp = WatchParams::default(); // allowWatchBookmarks=true
        let mut stream = api.watch(&wp, rv).await.expect("watch").boxed();
        assert_eq!(
            events_within(&mut stream, Duration::from_millis(400)).await,
            Vec::<String>::new(),
            "rv {rv:?}: no initial events, no bookmarks"
        );
        server.apply(&def, report("new", 1));
        server.apply(&def, report("r-0", 2));
        server.delete(&def, Some("ns"), "r-1");
        assert_eq!(
            events_within(&mut stream, Duration::from_millis(400)).await,
            ["ADDED new", "MODIFIED r-0", "DELETED r-1"],
            "rv {rv:?}"
        );
        server.delete(&def, Some("ns"), "new");
        server.apply(&def, report("r-1", 1));
        server.apply(&def, report("r-0", 1));
    }
}

#[tokio::test]
async fn watch_from_any_other_version_replays_everything_as_added_and_never_410() {
    let (server, def) = server(3).await;
    let api = api(&server, &def);
    // Deleted while no watch was open: never sent, simply absent.
    server.delete(&def, Some("ns"), "r-1");
    server.compact();
    for (round, rv) in ["1", "2", "999999"].into_iter().enumerate() {
        let mut stream = api
            .watch(&WatchParams::default(), rv)
            .await
            .expect("watch")
            .boxed();
        assert_eq!(
            events_within(&mut stream, Duration::from_millis(400)).await,
            ["ADDED r-0", "ADDED r-2"],
            "rv {rv}: the replay, no 410, no bookmark"
        );
        server.apply(&def, report("r-0", 10 + round as u64));
        assert_eq!(
            events_within(&mut stream, Duration::from_millis(400)).await,
            ["MODIFIED r-0"],
            "rv {rv}: then live events"
        );
    }
    // A clean end (as a timeout) and a new watch: the replay again.
    let mut stream = api
        .watch(&WatchParams::default(), "5")
        .await
        .expect("watch")
        .boxed();
    assert_eq!(
        events_within(&mut stream, Duration::from_millis(400))
            .await
            .len(),
        2
    );
    server.end_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(matches!(end, Ok(None)), "the stream ended cleanly");
}

#[tokio::test]
async fn dropped_live_events_reach_no_watch_but_lists_see_them() {
    let (server, def) = server(2).await;
    let api = api(&server, &def);
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let drop = ReportsServerMode {
        drop_live_events: true,
    };
    server.set_reports_server(&def, Some(drop));
    server.apply(&def, report("elsewhere", 1));
    server.delete(&def, Some("ns"), "r-0");
    assert_eq!(
        events_within(&mut stream, Duration::from_millis(400)).await,
        Vec::<String>::new()
    );
    let names: Vec<String> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    assert_eq!(names, ["elsewhere", "r-1"]);
    server.set_reports_server(&def, Some(ReportsServerMode::default()));
    server.apply(&def, report("here", 1));
    assert_eq!(
        events_within(&mut stream, Duration::from_millis(400)).await,
        ["ADDED here"]
    );
}
