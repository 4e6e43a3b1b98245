//! The metrics encoder: renders the aggregated state in the Prometheus text
//! format 0.0.4 and in OpenMetrics 1.0, once per change of the state, into a
//! [`Snapshot`] that HTTP handlers serve without further work.
//!
//! The exposition is written directly rather than through
//! `prometheus-client`, whose encoder only speaks OpenMetrics: both formats
//! are produced in one pass, and the series come straight from the
//! aggregate's table without building per-scrape metric objects.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::aggregate::{Aggregate, FreshnessRow};
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
        for family in FAMILIES {
            out.family(family, aggregate);
        }
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

/// The families rendered from the aggregate, in the order they are served.
/// Adding a family is adding an entry here (and the aggregate's visitor it
/// reads); names, `_total` and both formats' headers follow from [`Family`].
static FAMILIES: &[Family<Aggregate>] = &[
    Family {
        name: "policyreport_results",
        help: "Number of policy report results currently present, per subject.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            let names = a.labels().names();
            a.for_each_result(|values, n| {
                s.write(names.iter().copied().zip(values.iter().copied()), n)
            })
        },
    },
    Family {
        name: "policyreport_control_resources",
        help: "Resources per compliance control: compliant when all matching results pass, noncompliant when any fails, warns or errors, excepted when all are skips.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            a.for_each_control(|control, namespace, kind, status, n| {
                let labels = [
                    ("control", control),
                    ("namespace", namespace),
                    ("kind", kind),
                    ("status", status.as_str()),
                ];
                s.write(labels, n)
            })
        },
    },
    Family {
        name: "policyreport_admission_blocked",
        help: "Admission requests Kyverno blocked, counted from its PolicyViolation Events.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| a.for_each_blocked(admission_samples(s)),
    },
    Family {
        name: "policyreport_admission_audit_failures",
        help: "Admission requests Audit let through with a failing or erroring rule, which Enforce would have refused, counted from Kyverno's PolicyViolation Events.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| a.for_each_audit_failure(admission_samples(s)),
    },
    Family {
        name: "policyreport_policy_info",
        help: "Kyverno policies and their mode (audit, enforce, mixed or none); always 1.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            for p in a.policies() {
                let labels = [
                    ("policy", p.policy.as_str()),
                    ("mode", p.mode.as_str()),
                    ("category", p.category.as_str()),
                    ("severity", p.severity.as_str()),
                    ("title", p.title.as_str()),
                    ("background", if p.background { "true" } else { "false" }),
                ];
                s.write(labels, 1)
            }
        },
    },
    Family {
        name: "policyreport_policy_namespace_mode",
        help: "The mode (audit, enforce or mixed) a policy is in, per namespace where it has results or that its overrides name; always 1.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            a.for_each_namespace_mode(|policy, namespace, mode| {
                let labels = [
                    ("policy", policy),
                    ("namespace", namespace),
                    ("mode", mode.as_str()),
                ];
                s.write(labels, 1)
            })
        },
    },
    Family {
        name: "policyreport_namespace_info",
        help: "Namespaces and the labels --namespace-labels names (as kube-state-metrics' kube_namespace_labels); always 1.",
        kind: Type::Gauge,
        when: |a| a.namespace_label_names().len() > 0,
        samples: |a, s| {
            let names: Vec<&str> = a.namespace_label_names().collect();
            a.for_each_namespace_info(|namespace, values| {
                let labels = std::iter::once(("namespace", namespace))
                    .chain(names.iter().copied().zip(values.iter().copied()));
                s.write(labels, 1)
            })
        },
    },
    Family {
        name: "policyreport_reports",
        help: "Reports with results from this source, per namespace; a report with results from several sources counts once for each.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| a.for_each_freshness(|r| s.write(freshness_labels(&r), r.reports)),
    },
    Family {
        name: "policyreport_reports_stale",
        help: "Of policyreport_reports, those whose newest result timestamp from this source is older than --stale-after; reports without timestamps never count.",
        kind: Type::Gauge,
        when: |a| a.stale_after().is_some(),
        samples: |a, s| {
            a.for_each_freshness(|r| {
                if let Some(stale) = r.stale {
                    s.write(freshness_labels(&r), stale)
                }
            })
        },
    },
    Family {
        name: "policyreport_report_oldest_refresh_timestamp_seconds",
        help: "The oldest among these reports' newest result timestamps from this source (Unix seconds); absent when none has a timestamp.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            a.for_each_freshness(|r| {
                if let Some(t) = r.oldest.and_then(|t| u64::try_from(t).ok()) {
                    s.write(freshness_labels(&r), t)
                }
            })
        },
    },
    // Policy Reporter's names, help and label order (`--compat
    // policy-reporter`), for the rules and dashboards written for it.
    Family {
        name: "policy_report_result",
        help: "Gauge of Results by Policy",
        kind: Type::Gauge,
        when: Aggregate::policy_reporter_enabled,
        samples: |a, s| {
            a.for_each_policy_reporter_result(|l, n| {
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
                s.write(labels, n)
            })
        },
    },
    Family {
        name: "cluster_policy_report_result",
        help: "Gauge of Results by Policy",
        kind: Type::Gauge,
        when: Aggregate::policy_reporter_enabled,
        samples: |a, s| {
            a.for_each_policy_reporter_result(|l, n| {
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
                s.write(labels, n)
            })
        },
    },
    Family {
        name: "policyreport_exporter_objects",
        help: "Objects currently held, per watched resource.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| per_resource(s, &a.stats().objects),
    },
    Family {
        name: "policyreport_exporter_invalid_objects",
        help: "Objects or files skipped because they could not be decoded.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| per_resource(s, &a.stats().invalid),
    },
    Family {
        name: "policyreport_exporter_watch_errors",
        help: "Failed list or watch requests against the API server.",
        kind: Type::Counter,
        when: always,
        samples: |a, s| per_resource(s, &a.stats().watch_errors),
    },
    Family {
        name: "policyreport_exporter_relists",
        help: "Full relists of a watched resource, by reason: expired (the server answered 410), error (a failed list retried), interval (--relist-interval).",
        kind: Type::Counter,
        when: always,
        samples: |a, s| {
            for ((resource, reason), n) in &a.stats().relists {
                s.write([("resource", *resource), ("reason", *reason)], *n);
            }
        },
    },
    Family {
        name: "policyreport_exporter_synced",
        help: "1 once the initial list of a source is complete, 0 before it and while its list or watch requests fail.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| {
            for (target, state) in a.sync_state() {
                s.write([("resource", target.as_str())], u64::from(state.synced()));
            }
        },
    },
    Family {
        name: "policyreport_exporter_series",
        help: "Number of policyreport_results series.",
        kind: Type::Gauge,
        when: always,
        samples: |a, s| s.write([], a.series_count() as u64),
    },
    Family {
        name: "policyreport_exporter_build_info",
        help: "Build information; always 1.",
        kind: Type::Gauge,
        when: always,
        samples: |_, s| s.write([("version", env!("CARGO_PKG_VERSION"))], 1),
    },
];

/// A metric type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A value that goes up and down.
    Gauge,
    /// A value that only grows; samples are named `<name>_total`.
    Counter,
}

impl Type {
    /// The name in `# TYPE` lines.
    fn as_str(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
        }
    }

    /// What sample names (and the Prometheus text format's `# HELP` and
    /// `# TYPE` lines) append to the family name.
    fn suffix(self) -> &'static str {
        match self {
            Type::Gauge => "",
            Type::Counter => "_total",
        }
    }
}

/// A metric family read from some state `S`: everything about it in one
/// place. The writer derives the rest: counters' samples (and their
/// Prometheus text headers) are named `<name>_total`, OpenMetrics headers
/// `<name>`.
pub struct Family<S: ?Sized> {
    /// The family name, without `_total` for counters.
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Gauge or counter.
    pub kind: Type,
    /// Whether the family is served at all (for families a flag enables).
    pub when: fn(&S) -> bool,
    /// Write the samples of the family, one [`Samples::write`] per series.
    pub samples: fn(&S, &mut Samples<'_>),
}

/// For families that are always served.
pub fn always<S: ?Sized>(_: &S) -> bool {
    true
}

/// The sample writer of one family: it names every sample.
pub struct Samples<'b> {
    buf: &'b mut String,
    name: &'static str,
    suffix: &'static str,
}

impl Samples<'_> {
    /// Write one sample with these labels, in this order.
    pub fn write<'a>(&mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>, value: u64) {
        self.name();
        write_labels(self.buf, labels);
        let _ = writeln!(self.buf, " {value}");
    }

    /// Write one unlabelled sample with a float value: integral values as
    /// integers, others in Rust's shortest round-trip form.
    pub fn float(&mut self, value: f64) {
        if value.fract() == 0.0 && value.abs() < 1e15 {
            self.write([], value as u64);
        } else {
            self.name();
            let _ = writeln!(self.buf, " {value}");
        }
    }

    fn name(&mut self) {
        self.buf.push_str(self.name);
        self.buf.push_str(self.suffix);
    }
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
    /// Write a family read from `state`, unless its `when` says it is off.
    /// The Prometheus text format names a counter `<name>_total` in its
    /// headers, OpenMetrics `<name>`; samples are `<name>_total` in both.
    pub fn family<S: ?Sized>(&mut self, family: &Family<S>, state: &S) {
        if !(family.when)(state) {
            return;
        }
        let Family {
            name, help, kind, ..
        } = *family;
        let (suffix, type_name) = (kind.suffix(), kind.as_str());
        let _ = write!(
            self.prometheus,
            "# HELP {name}{suffix} {help}\n# TYPE {name}{suffix} {type_name}\n"
        );
        let _ = write!(
            self.openmetrics,
            "# HELP {name} {help}\n# TYPE {name} {type_name}\n"
        );
        let start = self.prometheus.len();
        (family.samples)(
            state,
            &mut Samples {
                buf: &mut self.prometheus,
                name,
                suffix,
            },
        );
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
fn admission_samples<'s, 'b>(
    s: &'s mut Samples<'b>,
) -> impl FnMut(&str, &str, &str, &str, &str, u64) {
    move |namespace, policy, rule, kind, control, n| {
        let labels = [
            ("namespace", namespace),
            ("policy", policy),
            ("rule", rule),
            ("kind", kind),
            ("control", control),
        ];
        s.write(labels, n)
    }
}

/// The labels of the report freshness families.
fn freshness_labels<'a>(r: &FreshnessRow<'a>) -> [(&'static str, &'a str); 2] {
    [("namespace", r.namespace), ("source", r.source)]
}

/// One sample per watched resource.
fn per_resource(s: &mut Samples<'_>, map: &BTreeMap<&str, u64>) {
    for (resource, n) in map {
        s.write([("resource", *resource)], *n);
    }
}

/// Write `{k="v",...}`, or nothing when there are no labels.
fn write_labels<'a>(buf: &mut String, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
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
mod tests;
