//! The metrics encoder: renders the aggregated state in the Prometheus text
//! format 0.0.4 and in OpenMetrics 1.0, once per change of the state, into a
//! [`Snapshot`] that HTTP handlers serve without further work.
//!
//! The exposition is written directly rather than through
//! `prometheus-client`, whose encoder only speaks OpenMetrics: both formats
//! are produced in one pass, and the series come straight from the
//! aggregate's table without building per-scrape metric objects.

use std::fmt::Write;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::aggregate::Aggregate;
use crate::gzip;

/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What readers see: both renderings and the readiness at one generation.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The aggregate generation this was rendered from.
    pub generation: u64,
    /// Prometheus text 0.0.4.
    pub prometheus: Bytes,
    /// OpenMetrics text, without the closing `# EOF` so that per-scrape
    /// families can follow.
    pub openmetrics: Bytes,
    /// Sync targets still waiting for their initial list.
    pub pending: Vec<String>,
    /// gzip of `prometheus` and of `openmetrics`, each made by the first
    /// scrape of this rendering that accepts gzip, then shared: renderings
    /// no client asks to compress (most of them, under churn) cost nothing.
    gzip: [OnceLock<gzip::Prefix>; 2],
}

impl Snapshot {
    /// The gzip of one rendering (`openmetrics` or Prometheus text),
    /// compressing it now if no scrape has yet. Compressing takes some
    /// milliseconds for a large rendering: async callers should first try
    /// [`gzip_cached`](Self::gzip_cached).
    pub fn gzip(&self, openmetrics: bool) -> &gzip::Prefix {
        let text = if openmetrics {
            &self.openmetrics
        } else {
            &self.prometheus
        };
        self.gzip[usize::from(openmetrics)].get_or_init(|| gzip::Prefix::new(text))
    }

    /// The gzip of one rendering if a scrape has already made it.
    pub fn gzip_cached(&self, openmetrics: bool) -> Option<&gzip::Prefix> {
        self.gzip[usize::from(openmetrics)].get()
    }

    /// Render the aggregate.
    pub fn render(aggregate: &Aggregate) -> Self {
        Self::render_reusing(aggregate, None)
    }

    /// Render the aggregate into the buffers of a snapshot no longer in use,
    /// when no reader still holds them: publishing then allocates nothing.
    pub fn render_reusing(aggregate: &Aggregate, old: Option<Snapshot>) -> Self {
        let mut out = Exposition::default();
        if let Some(old) = old {
            out.prometheus = reclaim(old.prometheus);
            out.openmetrics = reclaim(old.openmetrics);
        }
        let names = aggregate.labels().names();
        out.family(
            "policyreport_results",
            "Number of policy report results currently present, per subject.",
            Type::Gauge,
            |buf| {
                aggregate.for_each_result(|values, n| {
                    sample(
                        buf,
                        "policyreport_results",
                        names.iter().copied().zip(values.iter().copied()),
                        n,
                    )
                })
            },
        );
        out.family(
            "policyreport_control_resources",
            "Resources per compliance control: compliant when all matching results pass, noncompliant when any fails, warns or errors, excepted when all are skips.",
            Type::Gauge,
            |buf| {
                aggregate.for_each_control(|control, namespace, kind, status, n| {
                    let labels = [
                        ("control", control),
                        ("namespace", namespace),
                        ("kind", kind),
                        ("status", status.as_str()),
                    ];
                    sample(buf, "policyreport_control_resources", labels, n)
                })
            },
        );
        out.family(
            "policyreport_admission_blocked",
            "Admission requests Kyverno blocked, counted from its PolicyViolation Events.",
            Type::Counter,
            |buf| {
                aggregate.for_each_blocked(admission_samples(
                    buf,
                    "policyreport_admission_blocked_total",
                ))
            },
        );
        out.family(
            "policyreport_admission_audit_failures",
            "Admission requests Audit let through with a failing or erroring rule, which Enforce would have refused, counted from Kyverno's PolicyViolation Events.",
            Type::Counter,
            |buf| aggregate.for_each_audit_failure(admission_samples(buf, "policyreport_admission_audit_failures_total")),
        );
        out.family(
            "policyreport_policy_info",
            "Kyverno policies and their mode (audit, enforce, mixed or none); always 1.",
            Type::Gauge,
            |buf| {
                for p in aggregate.policies() {
                    let labels = [
                        ("policy", p.policy.as_str()),
                        ("mode", p.mode.as_str()),
                        ("category", p.category.as_str()),
                        ("severity", p.severity.as_str()),
                        ("title", p.title.as_str()),
                        ("background", if p.background { "true" } else { "false" }),
                    ];
                    sample(buf, "policyreport_policy_info", labels, 1)
                }
            },
        );
        out.family(
            "policyreport_policy_namespace_mode",
            "The mode (audit, enforce or mixed) a policy is in, per namespace where it has results or that its overrides name; always 1.",
            Type::Gauge,
            |buf| {
                aggregate.for_each_namespace_mode(|policy, namespace, mode| {
                    let labels = [
                        ("policy", policy),
                        ("namespace", namespace),
                        ("mode", mode.as_str()),
                    ];
                    sample(buf, "policyreport_policy_namespace_mode", labels, 1)
                })
            },
        );
        if aggregate.namespace_label_names().len() > 0 {
            let names: Vec<&str> = aggregate.namespace_label_names().collect();
            out.family(
                "policyreport_namespace_info",
                "Namespaces and the labels --namespace-labels names (as kube-state-metrics' kube_namespace_labels); always 1.",
                Type::Gauge,
                |buf| {
                    aggregate.for_each_namespace_info(|namespace, values| {
                        let labels = std::iter::once(("namespace", namespace))
                            .chain(names.iter().copied().zip(values.iter().copied()));
                        sample(buf, "policyreport_namespace_info", labels, 1)
                    })
                },
            );
        }
        if aggregate.policy_reporter_enabled() {
            // Policy Reporter's names, help and label order (`--compat
            // policy-reporter`), for the rules and dashboards written for it.
            out.family(
                "policy_report_result",
                "Gauge of Results by Policy",
                Type::Gauge,
                |buf| {
                    aggregate.for_each_policy_reporter_result(|l, n| {
                        if l.namespace.is_empty() {
                            return;
                        }
                        let labels = [
                            ("namespace", l.namespace),
                            ("policy", l.policy),
                            ("status", l.status),
                            ("severity", l.severity),
                            ("category", l.category),
                            ("source", l.source),
                        ];
                        sample(buf, "policy_report_result", labels, n)
                    })
                },
            );
            out.family(
                "cluster_policy_report_result",
                "Gauge of Results by Policy",
                Type::Gauge,
                |buf| {
                    aggregate.for_each_policy_reporter_result(|l, n| {
                        if !l.namespace.is_empty() {
                            return;
                        }
                        let labels = [
                            ("policy", l.policy),
                            ("status", l.status),
                            ("severity", l.severity),
                            ("category", l.category),
                            ("source", l.source),
                        ];
                        sample(buf, "cluster_policy_report_result", labels, n)
                    })
                },
            );
        }
        let stats = aggregate.stats();
        let per_resource =
            |buf: &mut String, name: &str, map: &std::collections::BTreeMap<&str, u64>| {
                for (resource, n) in map {
                    sample(buf, name, [("resource", *resource)], *n);
                }
            };
        out.family(
            "policyreport_exporter_objects",
            "Objects currently held, per watched resource.",
            Type::Gauge,
            |buf| per_resource(buf, "policyreport_exporter_objects", &stats.objects),
        );
        out.family(
            "policyreport_exporter_invalid_objects",
            "Objects or files skipped because they could not be decoded.",
            Type::Counter,
            |buf| {
                per_resource(
                    buf,
                    "policyreport_exporter_invalid_objects_total",
                    &stats.invalid,
                )
            },
        );
        out.family(
            "policyreport_exporter_watch_errors",
            "Failed list or watch requests against the API server.",
            Type::Counter,
            |buf| {
                per_resource(
                    buf,
                    "policyreport_exporter_watch_errors_total",
                    &stats.watch_errors,
                )
            },
        );
        out.family(
            "policyreport_exporter_relists",
            "Full relists of a watched resource, by reason: expired (the server answered 410), error (a failed list retried), interval (--relist-interval).",
            Type::Counter,
            |buf| {
                for ((resource, reason), n) in &stats.relists {
                    let labels = [("resource", *resource), ("reason", *reason)];
                    sample(buf, "policyreport_exporter_relists_total", labels, *n);
                }
            },
        );
        out.family(
            "policyreport_exporter_synced",
            "1 once the initial list of a source is complete, 0 before it and while its list or watch requests fail.",
            Type::Gauge,
            |buf| {
                for (target, state) in aggregate.sync_state() {
                    let labels = [("resource", target.as_str())];
                    sample(buf, "policyreport_exporter_synced", labels, u64::from(state.synced()));
                }
            },
        );
        out.family(
            "policyreport_exporter_series",
            "Number of policyreport_results series.",
            Type::Gauge,
            |buf| {
                sample(
                    buf,
                    "policyreport_exporter_series",
                    [],
                    aggregate.series_count() as u64,
                )
            },
        );
        out.family(
            "policyreport_exporter_build_info",
            "Build information; always 1.",
            Type::Gauge,
            |buf| {
                sample(
                    buf,
                    "policyreport_exporter_build_info",
                    [("version", env!("CARGO_PKG_VERSION"))],
                    1,
                )
            },
        );
        let (prometheus, openmetrics) = out.finish();
        Snapshot {
            generation: aggregate.generation(),
            prometheus,
            openmetrics,
            pending: aggregate
                .pending_targets()
                .into_iter()
                .map(String::from)
                .collect(),
            gzip: Default::default(),
        }
    }
}

/// A metric type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A value that goes up and down.
    Gauge,
    /// A value that only grows; samples are named `<name>_total`.
    Counter,
}

/// Both renderings under construction. Samples are written once and copied.
#[derive(Default)]
pub struct Exposition {
    /// Prometheus text 0.0.4.
    pub prometheus: String,
    /// OpenMetrics text, without `# EOF`.
    pub openmetrics: String,
}

impl Exposition {
    /// Write a family. For counters, `name` is given without `_total`; the
    /// sample writer must use `<name>_total`.
    pub fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Type,
        samples: impl FnOnce(&mut String),
    ) {
        let (prom_name, type_name) = match kind {
            Type::Gauge => (name.to_owned(), "gauge"),
            Type::Counter => (format!("{name}_total"), "counter"),
        };
        let _ = write!(
            self.prometheus,
            "# HELP {prom_name} {help}\n# TYPE {prom_name} {type_name}\n"
        );
        let _ = write!(
            self.openmetrics,
            "# HELP {name} {help}\n# TYPE {name} {type_name}\n"
        );
        let start = self.prometheus.len();
        samples(&mut self.prometheus);
        self.openmetrics.push_str(&self.prometheus[start..]);
    }

    fn finish(self) -> (Bytes, Bytes) {
        (Bytes::from(self.prometheus), Bytes::from(self.openmetrics))
    }
}

/// An empty string with the capacity of `bytes`, if nothing else holds them.
fn reclaim(bytes: Bytes) -> String {
    match bytes.try_into_mut() {
        Ok(buf) => {
            let mut buf = Vec::from(buf);
            buf.clear();
            String::from_utf8(buf).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// A writer of admission counter samples (blocked, audit failures), as the
/// aggregate's `for_each_blocked` and `for_each_audit_failure` visit them.
fn admission_samples<'b>(
    buf: &'b mut String,
    name: &'b str,
) -> impl FnMut(&str, &str, &str, &str, &str, u64) + 'b {
    move |namespace, policy, rule, kind, control, n| {
        let labels = [
            ("namespace", namespace),
            ("policy", policy),
            ("rule", rule),
            ("kind", kind),
            ("control", control),
        ];
        sample(buf, name, labels, n)
    }
}

/// Write one sample line. Counters must be given their `_total` name.
pub fn sample<'a>(
    buf: &mut String,
    name: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: u64,
) {
    buf.push_str(name);
    let mut first = true;
    for (k, v) in labels {
        buf.push(if first { '{' } else { ',' });
        first = false;
        buf.push_str(k);
        buf.push_str("=\"");
        escape_label_value(buf, v);
        buf.push('"');
    }
    if !first {
        buf.push('}');
    }
    let _ = writeln!(buf, " {value}");
}

/// Escape a label value as both text formats require.
fn escape_label_value(buf: &mut String, v: &str) {
    if !v.contains(['\\', '"', '\n']) {
        buf.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '"' => buf.push_str("\\\""),
            '\n' => buf.push_str("\\n"),
            c => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        let mut s = String::new();
        sample(&mut s, "m", [("a", "x\"y\\z\nw"), ("b", "")], 3);
        assert_eq!(s, "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 3\n");
        s.clear();
        sample(&mut s, "m", [], 0);
        assert_eq!(s, "m 0\n");
    }

    #[test]
    fn counters_differ_only_in_headers() {
        let mut e = Exposition::default();
        e.family("x", "Help.", Type::Counter, |b| sample(b, "x_total", [], 2));
        let (p, o) = e.finish();
        assert_eq!(
            &p[..],
            b"# HELP x_total Help.\n# TYPE x_total counter\nx_total 2\n"
        );
        assert_eq!(&o[..], b"# HELP x Help.\n# TYPE x counter\nx_total 2\n");
    }

    #[test]
    fn rendering_into_a_spare_snapshot_reuses_its_buffers() {
        let agg = Aggregate::new(crate::aggregate::Config::default());
        let fresh = Snapshot::render(&agg);
        let spare = Snapshot::render(&agg);
        let held = spare.prometheus.as_ptr();
        let reused = Snapshot::render_reusing(&agg, Some(spare));
        assert_eq!(reused.prometheus, fresh.prometheus);
        assert_eq!(reused.openmetrics, fresh.openmetrics);
        assert_eq!(reused.prometheus.as_ptr(), held, "same allocation");
        // Buffers a reader still holds are left alone.
        let spare = Snapshot::render(&agg);
        let reader = spare.prometheus.clone();
        let reused = Snapshot::render_reusing(&agg, Some(spare));
        assert_eq!(reused.prometheus, fresh.prometheus);
        assert_eq!(reader, fresh.prometheus);
    }
}
