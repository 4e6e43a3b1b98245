//! A property test: incremental updates equal counting the final set from
//! scratch, for results, control tallies and freshness.

use super::*;

const POLICIES: [&str; 3] = [
    "require-requests-limits",
    "restrict-image-registries",
    "ns/team",
];
const CATEGORIES: [Option<&str>; 3] = [
    None,
    Some("Best Practices"),
    Some("Pod Security Standards (Baseline)"),
];
const OUTCOMES: [&str; 5] = ["pass", "fail", "warn", "error", "skip"];
const KINDS: [&str; 2] = ["Pod", "Deployment"];
const SOURCES: [&str; 2] = ["kyverno", "trivy"];
/// Result timestamps: stale, fresh, and exactly at the 3h cutoff (fresh).
const TIMES: [i64; 3] = [T - 5 * H - 600, T - 600, T - 3 * H];

#[derive(Clone, Debug)]
struct GenResult {
    policy: usize,
    category: usize,
    outcome: usize,
    subjects: Vec<usize>,
    source: Option<usize>,
    timestamp: Option<usize>,
}

#[derive(Clone, Debug)]
struct GenReport {
    results: Vec<GenResult>,
    invalid: bool,
    top_source: bool,
}

impl GenReport {
    /// A result's source: its own, else the report's.
    fn source_of(&self, r: &GenResult) -> &'static str {
        match (r.source, self.top_source) {
            (Some(s), _) => SOURCES[s],
            (None, true) => "kyverno",
            (None, false) => "",
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut results: Vec<_> = self
            .results
            .iter()
            .map(|r| {
                let mut v = json!({"policy": POLICIES[r.policy], "result": OUTCOMES[r.outcome]});
                if let Some(c) = CATEGORIES[r.category] {
                    v["category"] = json!(c);
                }
                if let Some(s) = r.source {
                    v["source"] = json!(SOURCES[s]);
                }
                if let Some(t) = r.timestamp {
                    v["timestamp"] = json!({"seconds": TIMES[t], "nanos": 0});
                }
                if !r.subjects.is_empty() {
                    v["resources"] = r
                        .subjects
                        .iter()
                        .map(|k| json!({"kind": KINDS[*k], "name": "x"}))
                        .collect();
                }
                v
            })
            .collect();
        if self.invalid {
            results.push(json!({"policy": "p", "result": "maybe"}));
        }
        let mut body = json!({"scope": {"kind": "Pod", "name": "x"}, "results": results});
        if self.top_source {
            body["source"] = json!("kyverno");
        }
        body
    }
}

#[derive(Clone, Debug)]
enum Op {
    Apply(usize, usize, usize, GenReport),
    Delete(usize, usize, usize),
    Relist(usize, Vec<(usize, usize, GenReport)>),
    AbandonedRelist(usize, Vec<(usize, usize, GenReport)>),
}

fn origins() -> [Origin; 3] {
    [
        Origin::Watch(Kind::PolicyReport),
        Origin::Watch(Kind::ClusterPolicyReport),
        Origin::File(Arc::from(Path::new("/reports/a.yaml"))),
    ]
}

fn kind_of(origin: usize) -> Kind {
    [
        Kind::PolicyReport,
        Kind::ClusterPolicyReport,
        Kind::PolicyReport,
    ][origin]
}

fn report_strategy() -> impl Strategy<Value = GenReport> + Clone {
    let result = (
        0..3usize,
        0..3usize,
        0..5usize,
        prop::collection::vec(0..2usize, 0..3),
        prop::option::weighted(0.3, 0..2usize),
        prop::option::weighted(0.7, 0..3usize),
    )
        .prop_map(
            |(policy, category, outcome, subjects, source, timestamp)| GenResult {
                policy,
                category,
                outcome,
                subjects,
                source,
                timestamp,
            },
        );
    (
        prop::collection::vec(result, 0..5),
        prop::bool::weighted(0.1),
        any::<bool>(),
    )
        .prop_map(|(results, invalid, top_source)| GenReport {
            results,
            invalid,
            top_source,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let entry = (0..2usize, 0..4usize, report_strategy());
    prop_oneof![
        5 => (0..3usize, 0..2usize, 0..4usize, report_strategy()).prop_map(|(o, ns, n, r)| Op::Apply(o, ns, n, r)),
        2 => (0..3usize, 0..2usize, 0..4usize).prop_map(|(o, ns, n)| Op::Delete(o, ns, n)),
        1 => (0..3usize, prop::collection::vec(entry.clone(), 0..6)).prop_map(|(o, e)| Op::Relist(o, e)),
        1 => (0..3usize, prop::collection::vec(entry, 0..3)).prop_map(|(o, e)| Op::AbandonedRelist(o, e)),
    ]
}

type Model = HashMap<(usize, String, String), GenReport>;

/// The valid reports of the model, each with its namespace (empty for the
/// cluster-scoped kinds).
fn valid_reports(model: &Model) -> impl Iterator<Item = (&str, &GenReport)> {
    model
        .iter()
        .filter(|(_, report)| !report.invalid)
        .map(|((origin, ns, _), report)| {
            let ns = if kind_of(*origin).namespaced() {
                ns.as_str()
            } else {
                ""
            };
            (ns, report)
        })
}

/// The expected series, computed directly from the final set by the rules.
fn from_scratch(model: &Model) -> BTreeMap<Vec<String>, u64> {
    let mut out: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for (ns, report) in valid_reports(model) {
        for r in &report.results {
            let key = vec![
                ns.to_string(),
                POLICIES[r.policy].to_string(),
                CATEGORIES[r.category].unwrap_or("").to_string(),
                String::new(),
                report.source_of(r).to_string(),
                OUTCOMES[r.outcome].to_string(),
            ];
            *out.entry(key).or_default() += r.subjects.len().max(1) as u64;
        }
    }
    out
}

/// The expected control tallies, computed directly from the final set.
fn controls_from_scratch(model: &Model) -> ControlSnapshot {
    // (control, namespace, kind, name) -> (pass, bad, skip)
    type Resource = (String, String, String, String);
    let mut tallies: BTreeMap<Resource, (u32, u32, u32)> = BTreeMap::new();
    for (ns, report) in valid_reports(model) {
        for r in &report.results {
            let (pass, bad, skip) = match OUTCOMES[r.outcome] {
                "pass" => (1, 0, 0),
                "skip" => (0, 0, 1),
                _ => (0, 1, 0),
            };
            // A result can belong to several controls.
            let mut controls = Vec::new();
            match POLICIES[r.policy] {
                "require-requests-limits" => controls.push("resource-limits"),
                "restrict-image-registries" => controls.push("approved-registries"),
                _ => {}
            }
            if CATEGORIES[r.category] == Some("Pod Security Standards (Baseline)") {
                controls.push("secure-context");
            }
            let kinds: Vec<&str> = if r.subjects.is_empty() {
                vec!["Pod"]
            } else {
                r.subjects.iter().map(|k| KINDS[*k]).collect()
            };
            for control in controls {
                for kind in kinds.iter().filter(|k| **k == "Pod") {
                    let t = tallies
                        .entry((control.into(), ns.into(), (*kind).into(), "x".into()))
                        .or_default();
                    t.0 += pass;
                    t.1 += bad;
                    t.2 += skip;
                }
            }
        }
    }
    let mut out = ControlSnapshot::new();
    for ((c, ns, kind, _), (pass, bad, skip)) in tallies {
        let status = if bad > 0 {
            BAD
        } else if pass > 0 {
            OK
        } else if skip > 0 {
            EXC
        } else {
            continue;
        };
        *out.entry((c, ns, kind, status)).or_default() += 1;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_from_scratch(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let origins = origins();
        let clock = Clock::manual(T);
        let mut agg = fresh_agg(DEFAULT_STALE_AFTER, &clock);
        let mut model: Model = HashMap::new();
        let namespaces = ["prod", "dev"];
        let obj = |o: usize, ns: usize, n: usize, r: &GenReport| {
            object(kind_of(o), namespaces[ns], &format!("r{n}"), r.json())
        };
        // Cluster-scoped kinds ignore the namespace in their identity.
        let key = |o: usize, ns: usize, n: usize| {
            let ns = if kind_of(o).namespaced() { namespaces[ns] } else { "" };
            (o, ns.to_string(), format!("r{n}"))
        };
        for op in ops {
            match op {
                Op::Apply(o, ns, n, r) => {
                    agg.handle(SourceEvent::Apply { origin: origins[o].clone(), object: obj(o, ns, n, &r) });
                    model.insert(key(o, ns, n), r);
                }
                Op::Delete(o, ns, n) => {
                    agg.handle(SourceEvent::Delete {
                        origin: origins[o].clone(),
                        object: obj(o, ns, n, &GenReport { results: vec![], invalid: false, top_source: false }),
                    });
                    model.remove(&key(o, ns, n));
                }
                Op::Relist(o, entries) => {
                    agg.handle(SourceEvent::RelistStart { origin: origins[o].clone() });
                    model.retain(|(mo, _, _), _| *mo != o);
                    for (ns, n, r) in entries {
                        agg.handle(SourceEvent::RelistApply { origin: origins[o].clone(), object: obj(o, ns, n, &r) });
                        model.insert(key(o, ns, n), r);
                    }
                    agg.handle(SourceEvent::RelistEnd { origin: origins[o].clone() });
                }
                Op::AbandonedRelist(o, entries) => {
                    // A relist interrupted by a new one: only the second counts.
                    agg.handle(SourceEvent::RelistStart { origin: origins[o].clone() });
                    for (ns, n, r) in entries {
                        agg.handle(SourceEvent::RelistApply { origin: origins[o].clone(), object: obj(o, ns, n, &r) });
                    }
                    agg.handle(SourceEvent::RelistStart { origin: origins[o].clone() });
                    let current: Vec<_> = model.iter().filter(|((mo, _, _), _)| *mo == o)
                        .map(|(k, r)| (k.clone(), r.clone())).collect();
                    for ((_, ns, name), r) in current {
                        let object = object(kind_of(o), &ns, &name, r.json());
                        agg.handle(SourceEvent::RelistApply { origin: origins[o].clone(), object });
                    }
                    agg.handle(SourceEvent::RelistEnd { origin: origins[o].clone() });
                }
            }
            prop_assert_eq!(agg.results_snapshot(), from_scratch(&model));
            prop_assert_eq!(controls_of(&agg), controls_from_scratch(&model));
            prop_assert_eq!(freshness_of(&agg), freshness_from_scratch(&model, T));
        }
        let expected = from_scratch(&model);
        prop_assert_eq!(agg.series_count(), expected.len(), "no series leaked");
        let held: u64 = agg.stats().objects.values().sum();
        prop_assert_eq!(held, model.len() as u64);
        // And a fresh aggregate fed only the final set agrees.
        let mut fresh = new_agg(LabelOptions::default());
        for ((o, ns, name), r) in &model {
            let object = object(kind_of(*o), ns, name, r.json());
            fresh.handle(SourceEvent::Apply { origin: origins[*o].clone(), object });
        }
        prop_assert_eq!(fresh.results_snapshot(), expected);
        // An hour later the fresh ones stale too, without a report changing.
        clock.set(T + H);
        agg.tick();
        prop_assert_eq!(freshness_of(&agg), freshness_from_scratch(&model, T + H));
    }
}

/// The freshness rows a fresh aggregate computes for `model`, by the rules.
fn freshness_from_scratch(model: &Model, now: i64) -> Vec<FreshRow> {
    let mut out: BTreeMap<(String, String), (u64, u64, Option<i64>)> = BTreeMap::new();
    for (ns, report) in valid_reports(model) {
        let mut newest: BTreeMap<String, Option<i64>> = BTreeMap::new();
        for r in &report.results {
            let n = newest.entry(report.source_of(r).to_owned()).or_default();
            *n = (*n).max(r.timestamp.map(|t| TIMES[t]));
        }
        for (source, newest) in newest {
            let e = out.entry((ns.to_owned(), source)).or_default();
            e.0 += 1;
            if let Some(t) = newest {
                e.1 += u64::from(t < now - DEFAULT_STALE_AFTER.as_secs() as i64);
                e.2 = Some(e.2.map_or(t, |o| o.min(t)));
            }
        }
    }
    out.into_iter()
        .map(|((ns, source), (n, stale, oldest))| (ns, source, n, Some(stale), oldest))
        .collect()
}
