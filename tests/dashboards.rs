//! Every dashboard in dashboards/ matches its generator and is a well-formed
//! Grafana model: unique ids, grid positions inside 24 columns without
//! overlaps, the `${datasource}` variable, refId and expr on every target,
//! queries that merge replicas and filter on `$cluster`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::monitoring::{dashboards, panels, run};
use common::repo;

#[test]
fn dashboards_are_generated_and_valid() {
    let (ok, out) = run(Command::new("python3")
        .arg(repo().join("scripts/gen-dashboards.py"))
        .arg("--check"));
    assert!(ok, "{out}");

    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: uid must be 1-40 chars"
        );
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
            "{file}: schemaVersion >= 39"
        );
        assert!(d["id"].is_null(), "{file}: id must be null for import");

        // Variables: datasource, cluster (from external labels, may be absent).
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let var = |name: &str| {
            vars.iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{file}: no variable {name}"))
        };
        let ds = var("datasource");
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        let cluster = var("cluster");
        assert_eq!(cluster["type"], "query", "{file}");
        assert_eq!(
            cluster["definition"], "label_values(policyreport_exporter_build_info, cluster)",
            "{file}"
        );
        assert_eq!(cluster["includeAll"], true, "{file}");
        assert_eq!(cluster["allValue"], ".*", "{file}");
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                v["datasource"]["uid"], "${datasource}",
                "{file}: variable {} datasource",
                v["name"]
            );
        }
        let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        if !file.contains("health") {
            assert!(names.contains(&"namespace"), "{file}: namespace variable");
        }

        // Panels: unique ids, a grid position inside 24 columns without
        // overlaps, the datasource variable, and targets with refId and expr.
        let mut ids = BTreeSet::new();
        let mut cells: BTreeMap<(i64, i64), String> = BTreeMap::new();
        let all = panels(&d);
        assert!(!all.is_empty(), "{file}: no panels");
        for p in all {
            let title = p["title"].as_str().unwrap_or_default();
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{file}: {title}: id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            assert!(!title.is_empty(), "{file}: panel {id} has no title");
            let g = &p["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| {
                g[k].as_i64()
                    .unwrap_or_else(|| panic!("{file}: {title}: gridPos.{k}"))
            });
            assert!(
                h > 0 && w > 0 && x >= 0 && y >= 0 && x + w <= 24,
                "{file}: {title}: gridPos {g}"
            );
            for cx in x..x + w {
                for cy in y..y + h {
                    if let Some(other) = cells.insert((cx, cy), title.to_owned()) {
                        panic!("{file}: panels {other:?} and {title:?} overlap");
                    }
                }
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: {title}: datasource"
            );
            assert_eq!(p["datasource"]["type"], "prometheus", "{file}: {title}");
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: {title}: targets"));
            assert!(!targets.is_empty(), "{file}: {title}: no targets");
            let mut refs = BTreeSet::new();
            for t in targets {
                let r = t["refId"].as_str().unwrap_or_default();
                assert!(!r.is_empty() && refs.insert(r), "{file}: {title}: refId");
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{file}: {title}: target datasource"
                );
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{file}: {title}: empty expr");
                // The query idiom: replicas are merged before anything is summed,
                // unless it reads only recorded series (merged by their rule) and
                // Kyverno's own counters (each replica counts what it served).
                assert!(
                    expr.contains("max without (instance, pod)")
                        || expr.contains("max by (")
                        || selected_metrics(expr)
                            .iter()
                            .all(|m| m.contains(':') || m.starts_with("kyverno_")),
                    "{file}: {title}: query does not merge replicas: {expr}"
                );
                assert!(
                    expr.contains("cluster=~\"$cluster\""),
                    "{file}: {title}: query ignores $cluster: {expr}"
                );
                // Every variable a query uses exists (or is a Grafana built-in).
                for var in expr.split('$').skip(1) {
                    let name: String = var
                        .trim_start_matches('{')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(
                        name.starts_with("__") || names.contains(&name.as_str()),
                        "{file}: {title}: unknown variable ${name}"
                    );
                }
            }
        }
    }
}

/// The metric names a query selects with a `{…}` matcher.
fn selected_metrics(expr: &str) -> Vec<&str> {
    expr.match_indices('{')
        .filter_map(|(i, _)| {
            let head = &expr[..i];
            let start = head
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |j| j + 1);
            let name = &head[start..];
            (!name.is_empty()).then_some(name)
        })
        .collect()
}
