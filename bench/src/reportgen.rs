//! A deterministic generator of report sets shaped like the ones Kyverno
//! (≥ 1.11, per-resource layout) writes today.
//!
//! For every workload it creates one `PolicyReport` per Pod (named after the
//! Pod's UID, in its namespace, owned by it, `scope` = the Pod, results
//! without `resources`), one per owning controller (ReplicaSet, Deployment,
//! StatefulSet, DaemonSet, Job, CronJob) with `autogen-` (or
//! `autogen-cronjob-`) rule names, and one `ClusterPolicyReport` per
//! Namespace. Policies come from Kyverno's sample library; results mix
//! pass, fail, warn (unscored policies), error and skip (PolicyExceptions).
//!
//! The same [`Spec`] always yields the same objects, byte for byte.

use std::collections::BTreeMap;

use policyreport_test_support::rng::Rng;
use serde_json::{Map, Value, json};

/// What a policy checks, which decides its messages and properties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A `validate` rule with a pattern or CEL expression.
    Validate,
    /// A `validate.podSecurity` subrule at the given level.
    PodSecurity(&'static str),
}

/// One ClusterPolicy of Kyverno's sample library.
#[derive(Clone, Copy, Debug)]
pub struct PolicyDef {
    /// `metadata.name`.
    pub name: &'static str,
    /// The rules, each one result per resource.
    pub rules: &'static [&'static str],
    /// `policies.kyverno.io/category`.
    pub category: &'static str,
    /// `policies.kyverno.io/severity`.
    pub severity: &'static str,
    /// `policies.kyverno.io/scored`; unscored failures are written as `warn`.
    pub scored: bool,
    /// How often a workload violates it.
    pub fail_rate: f64,
    /// The validation message of a failure.
    pub message: &'static str,
    /// The failing field path below the pod spec.
    pub path: &'static str,
    /// What kind of rule it is.
    pub check: Check,
}

const BASELINE: &str = "Pod Security Standards (Baseline)";
const RESTRICTED: &str = "Pod Security Standards (Restricted)";
const BEST: &str = "Best Practices, EKS Best Practices";

const fn pol(
    name: &'static str,
    rules: &'static [&'static str],
    category: &'static str,
    severity: &'static str,
    fail_rate: f64,
    message: &'static str,
    path: &'static str,
) -> PolicyDef {
    PolicyDef {
        name,
        rules,
        category,
        severity,
        scored: true,
        fail_rate,
        message,
        path,
        check: Check::Validate,
    }
}

/// The sample library, most common first. `Spec::policies` takes a prefix.
pub const LIBRARY: &[PolicyDef] = &[
    pol(
        "require-requests-limits",
        &["validate-resources"],
        BEST,
        "medium",
        0.22,
        "CPU and memory resource requests and memory limits are required for containers.",
        "/spec/containers/0/resources/limits/",
    ),
    pol(
        "restrict-image-registries",
        &["validate-registries"],
        BEST,
        "medium",
        0.12,
        "Unknown image registry.",
        "/spec/containers/0/image/",
    ),
    PolicyDef {
        name: "disallow-latest-tag",
        rules: &["require-image-tag", "validate-image-tag"],
        category: "Best Practices",
        severity: "medium",
        scored: false,
        fail_rate: 0.15,
        message: "Using a mutable image tag e.g. 'latest' is not allowed.",
        path: "/spec/containers/0/image/",
        check: Check::Validate,
    },
    PolicyDef {
        name: "podsecurity-subrule-baseline",
        rules: &["baseline"],
        category: "Pod Security, EKS Best Practices",
        severity: "high",
        scored: true,
        fail_rate: 0.06,
        message: "",
        path: "",
        check: Check::PodSecurity("baseline"),
    },
    PolicyDef {
        name: "podsecurity-subrule-restricted",
        rules: &["restricted"],
        category: "Pod Security, EKS Best Practices",
        severity: "high",
        scored: true,
        fail_rate: 0.35,
        message: "",
        path: "",
        check: Check::PodSecurity("restricted"),
    },
    pol(
        "disallow-privileged-containers",
        &["privileged-containers"],
        BASELINE,
        "medium",
        0.03,
        "Privileged mode is disallowed. The fields spec.containers[*].securityContext.privileged and spec.initContainers[*].securityContext.privileged must be unset or set to `false`.",
        "/spec/containers/0/securityContext/privileged/",
    ),
    pol(
        "disallow-capabilities",
        &["adding-capabilities"],
        BASELINE,
        "medium",
        0.04,
        "Any capabilities added beyond the allowed list (AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT) are disallowed.",
        "/spec/containers/0/securityContext/capabilities/add/",
    ),
    pol(
        "disallow-host-namespaces",
        &["host-namespaces"],
        BASELINE,
        "medium",
        0.02,
        "Sharing the host namespaces is disallowed. The fields spec.hostNetwork, spec.hostIPC, and spec.hostPID must be unset or set to `false`.",
        "/spec/hostNetwork/",
    ),
    pol(
        "disallow-host-path",
        &["host-path"],
        BASELINE,
        "medium",
        0.03,
        "HostPath volumes are forbidden. The field spec.volumes[*].hostPath must be unset.",
        "/spec/volumes/0/hostPath/",
    ),
    pol(
        "disallow-host-ports",
        &["host-ports-none"],
        BASELINE,
        "medium",
        0.02,
        "Use of host ports is disallowed. The fields spec.containers[*].ports[*].hostPort , spec.initContainers[*].ports[*].hostPort, and spec.ephemeralContainers[*].ports[*].hostPort must either be unset or set to `0`.",
        "/spec/containers/0/ports/0/hostPort/",
    ),
    pol(
        "disallow-host-process",
        &["host-process-containers"],
        BASELINE,
        "medium",
        0.005,
        "HostProcess containers are disallowed. The fields spec.securityContext.windowsOptions.hostProcess, spec.containers[*].securityContext.windowsOptions.hostProcess, spec.initContainers[*].securityContext.windowsOptions.hostProcess, and spec.ephemeralContainers[*].securityContext.windowsOptions.hostProcess must either be undefined or set to `false`.",
        "/spec/containers/0/securityContext/windowsOptions/hostProcess/",
    ),
    pol(
        "disallow-proc-mount",
        &["check-proc-mount"],
        BASELINE,
        "medium",
        0.005,
        "Changing the proc mount from the default is not allowed. The fields spec.containers[*].securityContext.procMount, spec.initContainers[*].securityContext.procMount, and spec.ephemeralContainers[*].securityContext.procMount must be unset or set to `Default`.",
        "/spec/containers/0/securityContext/procMount/",
    ),
    pol(
        "disallow-selinux",
        &["selinux-type"],
        BASELINE,
        "medium",
        0.01,
        "Setting the SELinux type is restricted. The fields spec.securityContext.seLinuxOptions.type, spec.containers[*].securityContext.seLinuxOptions.type, , spec.initContainers[*].securityContext.seLinuxOptions, and spec.ephemeralContainers[*].securityContext.seLinuxOptions.type must either be unset or set to one of the allowed values (container_t, container_init_t, or container_kvm_t).",
        "/spec/securityContext/seLinuxOptions/type/",
    ),
    pol(
        "restrict-seccomp",
        &["check-seccomp"],
        BASELINE,
        "medium",
        0.02,
        "Use of custom Seccomp profiles is disallowed. The fields spec.securityContext.seccompProfile.type, spec.containers[*].securityContext.seccompProfile.type, spec.initContainers[*].securityContext.seccompProfile.type, and spec.ephemeralContainers[*].securityContext.seccompProfile.type must be unset or set to `RuntimeDefault` or `Localhost`.",
        "/spec/securityContext/seccompProfile/type/",
    ),
    pol(
        "restrict-sysctls",
        &["check-sysctls"],
        BASELINE,
        "medium",
        0.01,
        "Setting additional sysctls above the allowed type is disallowed. The field spec.securityContext.sysctls must be unset or not use any other names than kernel.shm_rmid_forced, net.ipv4.ip_local_port_range, net.ipv4.ip_unprivileged_port_start, net.ipv4.tcp_syncookies and net.ipv4.ping_group_range.",
        "/spec/securityContext/sysctls/0/name/",
    ),
    pol(
        "restrict-apparmor-profiles",
        &["app-armor"],
        BASELINE,
        "medium",
        0.01,
        "Specifying other AppArmor profiles is disallowed. The annotation `container.apparmor.security.beta.kubernetes.io` if defined must not be set to anything other than `runtime/default` or `localhost/*`.",
        "/metadata/annotations/container.apparmor.security.beta.kubernetes.io/",
    ),
    pol(
        "disallow-privilege-escalation",
        &["privilege-escalation"],
        RESTRICTED,
        "medium",
        0.30,
        "Privilege escalation is disallowed. The fields spec.containers[*].securityContext.allowPrivilegeEscalation, spec.initContainers[*].securityContext.allowPrivilegeEscalation, and spec.ephemeralContainers[*].securityContext.allowPrivilegeEscalation must be set to `false`.",
        "/spec/containers/0/securityContext/allowPrivilegeEscalation/",
    ),
    pol(
        "require-run-as-nonroot",
        &["run-as-non-root"],
        RESTRICTED,
        "medium",
        0.28,
        "Running as root is not allowed. Either the field spec.securityContext.runAsNonRoot must be set to `true`, or the fields spec.containers[*].securityContext.runAsNonRoot, spec.initContainers[*].securityContext.runAsNonRoot, and spec.ephemeralContainers[*].securityContext.runAsNonRoot must be set to `true`.",
        "/spec/securityContext/runAsNonRoot/",
    ),
    pol(
        "require-run-as-non-root-user",
        &["run-as-non-root-user"],
        RESTRICTED,
        "medium",
        0.08,
        "Running as root is not allowed. The fields spec.securityContext.runAsUser, spec.containers[*].securityContext.runAsUser, spec.initContainers[*].securityContext.runAsUser, and spec.ephemeralContainers[*].securityContext.runAsUser must be unset or set to a number greater than zero.",
        "/spec/securityContext/runAsUser/",
    ),
    pol(
        "disallow-capabilities-strict",
        &["require-drop-all"],
        RESTRICTED,
        "medium",
        0.33,
        "Containers must drop `ALL` capabilities.",
        "/spec/containers/0/securityContext/capabilities/drop/",
    ),
    pol(
        "restrict-seccomp-strict",
        &["check-seccomp-strict"],
        RESTRICTED,
        "medium",
        0.25,
        "Use of custom Seccomp profiles is disallowed. The fields spec.securityContext.seccompProfile.type, spec.containers[*].securityContext.seccompProfile.type, spec.initContainers[*].securityContext.seccompProfile.type, and spec.ephemeralContainers[*].securityContext.seccompProfile.type must be set to `RuntimeDefault` or `Localhost`.",
        "/spec/securityContext/seccompProfile/",
    ),
    pol(
        "restrict-volume-types",
        &["restricted-volumes"],
        RESTRICTED,
        "medium",
        0.04,
        "Only the following types of volumes may be used: configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, and secret.",
        "/spec/volumes/0/",
    ),
];

/// The policy that validates Namespaces (their ClusterPolicyReports).
pub const NAMESPACE_POLICY: PolicyDef = PolicyDef {
    name: "require-ns-labels",
    rules: &["check-for-labels-on-namespace"],
    category: "",
    severity: "",
    scored: true,
    fail_rate: 0.25,
    message: "The label `purpose` is required.",
    path: "/metadata/labels/purpose/",
    check: Check::Validate,
};

/// Default number of library policies: 19 policies write 20 results per
/// Pod report (`disallow-latest-tag` has two rules), so 50 000 reports hold
/// about 1 000 000 results.
pub const DEFAULT_POLICIES: usize = 19;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Number of reports to generate in total (Pods, controllers and
    /// Namespaces). Workloads are added until exactly this many exist.
    pub reports: usize,
    /// Instead of `reports`: add workloads until exactly this many Pods exist.
    pub pods: Option<usize>,
    /// Number of application namespaces (plus `kube-system`).
    pub namespaces: usize,
    /// How many policies of [`LIBRARY`] apply to Pods.
    pub policies: usize,
    /// The seed.
    pub seed: u64,
}

impl Spec {
    /// A spec for `reports` reports with defaults sized like a mid-size
    /// cluster: one namespace per ~250 reports (at least 4, at most 400).
    pub fn with_reports(reports: usize, seed: u64) -> Spec {
        Spec {
            reports,
            pods: None,
            namespaces: (reports / 250).clamp(4, 400),
            policies: DEFAULT_POLICIES,
            seed,
        }
    }
}

/// The report kind of a generated object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GenKind {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport.
    PolicyReport,
    /// `wgpolicyk8s.io/v1alpha2` ClusterPolicyReport.
    ClusterPolicyReport,
}

impl GenKind {
    /// The `kind` field.
    pub fn kind(self) -> &'static str {
        match self {
            GenKind::PolicyReport => "PolicyReport",
            GenKind::ClusterPolicyReport => "ClusterPolicyReport",
        }
    }

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            GenKind::PolicyReport => "policyreports",
            GenKind::ClusterPolicyReport => "clusterpolicyreports",
        }
    }

    /// Whether it lives in a namespace.
    pub fn namespaced(self) -> bool {
        self == GenKind::PolicyReport
    }

    /// The fake API server's description of this resource.
    pub fn resource_def(self) -> fake_apiserver::ResourceDef {
        fake_apiserver::ResourceDef::new(
            "wgpolicyk8s.io",
            "v1alpha2",
            self.kind(),
            self.plural(),
            self.namespaced(),
        )
    }
}

/// One generated report.
#[derive(Clone, Debug)]
pub struct Generated {
    /// Its kind.
    pub kind: GenKind,
    /// The subject's kind (Pod, ReplicaSet, …, Namespace).
    pub subject: &'static str,
    /// The object, as Kyverno would write it (without server-set fields
    /// such as `resourceVersion`).
    pub value: Value,
}

impl Generated {
    /// Namespace ("" for cluster-scoped) and name.
    pub fn id(&self) -> (String, String) {
        let m = &self.value["metadata"];
        (
            m["namespace"].as_str().unwrap_or("").to_owned(),
            m["name"].as_str().unwrap_or("").to_owned(),
        )
    }

    /// Number of results.
    pub fn results(&self) -> usize {
        self.value["results"].as_array().map_or(0, Vec::len)
    }
}

/// A generated report set.
#[derive(Clone, Debug)]
pub struct ReportSet {
    /// What produced it.
    pub spec: Spec,
    /// The reports, in generation order.
    pub reports: Vec<Generated>,
}

impl ReportSet {
    /// Total number of results over all reports.
    pub fn total_results(&self) -> u64 {
        self.reports.iter().map(|r| r.results() as u64).sum()
    }

    /// The expected `policyreport_results` series (see [`expected_counts`]).
    pub fn expected(&self) -> Counts {
        expected_counts(self.reports.iter().map(|r| (r.kind, &r.value)))
    }

    /// The reports as one `kubectl get -o json` List.
    pub fn to_list(&self) -> Value {
        list(self.reports.iter().map(|r| r.value.clone()).collect())
    }
}

/// Wraps items into a `kind: List` as `kubectl get -o json` prints it.
pub fn list(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""}
    })
}

/// The label values of one `policyreport_results` series, in the order
/// namespace, policy, category, severity, source, result.
pub type SeriesLabels = [String; 6];

/// Series → count.
pub type Counts = BTreeMap<SeriesLabels, u64>;

/// A from-scratch count of `policyreport_results` over report objects,
/// following docs/metrics.md's counting rules: a result counts once per listed
/// subject, or once when it lists none; the namespace is the report's ("" for
/// cluster-scoped kinds); `source` falls back to the report's top-level
/// `source`. Written independently of the exporter's code.
pub fn expected_counts<'a>(reports: impl IntoIterator<Item = (GenKind, &'a Value)>) -> Counts {
    let mut out = Counts::new();
    for (kind, report) in reports {
        let ns = if kind.namespaced() {
            report["metadata"]["namespace"].as_str().unwrap_or("")
        } else {
            ""
        };
        let top_source = report["source"].as_str();
        for r in report["results"].as_array().into_iter().flatten() {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            let source = r["source"].as_str().or(top_source).unwrap_or("").to_owned();
            let n = match r["resources"].as_array() {
                Some(list) if !list.is_empty() => list.len() as u64,
                _ => 1,
            };
            let key = [
                ns.to_owned(),
                s("policy"),
                s("category"),
                s("severity"),
                source,
                s("result"),
            ];
            *out.entry(key).or_default() += n;
        }
    }
    out.retain(|_, n| *n > 0);
    out
}

/// Sum of all counts.
pub fn total(counts: &Counts) -> u64 {
    counts.values().sum()
}

const APP_NAMESPACES: &[&str] = &[
    "payments",
    "checkout",
    "catalog",
    "search",
    "identity",
    "orders",
    "shipping",
    "billing",
    "analytics",
    "ml-serving",
    "data-platform",
    "observability",
    "ingress",
    "cert-manager",
    "notifications",
    "inventory",
    "recommendations",
    "reporting",
    "partner-api",
    "mobile-bff",
];

const WORKLOADS: &[&str] = &[
    "api",
    "web",
    "worker",
    "frontend",
    "backend",
    "gateway",
    "scheduler",
    "consumer",
    "producer",
    "cache",
    "indexer",
    "sync",
    "exporter",
    "webhook",
    "controller",
    "auth",
    "proxy",
    "migrator",
    "renderer",
    "notifier",
];

const SYSTEM_WORKLOADS: &[(&str, &str)] = &[
    ("coredns", "Deployment"),
    ("kube-proxy", "DaemonSet"),
    ("aws-node", "DaemonSet"),
    ("ebs-csi-node", "DaemonSet"),
    ("ebs-csi-controller", "Deployment"),
    ("metrics-server", "Deployment"),
    ("cluster-autoscaler", "Deployment"),
];

/// The verdict a workload's template gets from one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Pass,
    Fail,
    Error,
    Skip,
}

/// The decided verdicts of a workload template, per (policy, rule).
struct Template {
    verdicts: Vec<Vec<Verdict>>,
    exception: String,
}

/// Generation context.
struct Ctx<'s> {
    spec: &'s Spec,
    rng: Rng,
    out: Vec<Generated>,
    now: u64,
}

/// The timestamp Kyverno's background scan writes, near a fixed date so
/// that output is reproducible.
const EPOCH: u64 = 1_731_403_200;

/// Generates the report set for a spec.
pub fn generate(spec: &Spec) -> ReportSet {
    let policies = spec.policies.min(LIBRARY.len());
    let spec_eff = Spec {
        policies,
        ..spec.clone()
    };
    let mut ctx = Ctx {
        spec: &spec_eff,
        rng: Rng::new(spec.seed),
        out: Vec::with_capacity(spec.reports),
        now: EPOCH,
    };
    let mut namespaces: Vec<String> = vec!["kube-system".to_owned()];
    for i in 0..spec.namespaces {
        let base = APP_NAMESPACES[i % APP_NAMESPACES.len()];
        let round = i / APP_NAMESPACES.len();
        namespaces.push(if round == 0 {
            base.to_owned()
        } else {
            format!("{base}-{}", round + 1)
        });
    }
    // Namespace reports first, so that small sets still have some.
    let limit = if spec.pods.is_some() {
        usize::MAX
    } else {
        spec.reports
    };
    for ns in namespaces.iter().take(limit) {
        ctx.namespace_report(ns);
    }
    // Skewed sizes: some namespaces hold many more workloads than others.
    let weights: Vec<f64> = (0..namespaces.len())
        .map(|i| 1.0 / ((i % 17) as f64 + 1.0).powf(0.6))
        .collect();
    let sum: f64 = weights.iter().sum();
    let mut counters: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    let pods = |out: &[Generated]| out.iter().filter(|g| g.subject == "Pod").count();
    let mut pod_count = 0;
    loop {
        let left = match spec.pods {
            Some(p) if pod_count >= p => break,
            Some(_) => usize::MAX,
            None if ctx.out.len() >= spec.reports => break,
            None => spec.reports - ctx.out.len(),
        };
        let mut x = ctx.rng.unit() * sum;
        let mut ns_i = 0;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                ns_i = i;
                break;
            }
            x -= w;
        }
        let ns = namespaces[ns_i].clone();
        let system = ns == "kube-system";
        let (base, shape) = if system {
            let (name, kind) = *ctx.rng.pick(SYSTEM_WORKLOADS);
            (name, kind)
        } else {
            let name = *ctx.rng.pick(WORKLOADS);
            let roll = ctx.rng.below(100);
            let kind = match roll {
                0..=59 => "Deployment",
                60..=71 => "StatefulSet",
                72..=75 => "DaemonSet",
                76..=87 => "CronJob",
                _ => "Pod",
            };
            (name, kind)
        };
        let n = counters.entry((ns_i, base)).or_default();
        *n += 1;
        let name = if *n == 1 {
            base.to_owned()
        } else {
            format!("{base}-{n}")
        };
        let before = ctx.out.len();
        ctx.workload(&ns, &name, shape, system, left);
        if spec.pods.is_some() {
            pod_count += pods(&ctx.out[before..]);
        }
    }
    match spec.pods {
        Some(p) => {
            // Drop the last workload's surplus Pods.
            while pod_count > p {
                if let Some(i) = ctx.out.iter().rposition(|g| g.subject == "Pod") {
                    ctx.out.remove(i);
                    pod_count -= 1;
                }
            }
        }
        None => ctx.out.truncate(spec.reports),
    }
    let reports = ctx.out;
    ReportSet {
        spec: Spec {
            reports: reports.len(),
            ..spec_eff
        },
        reports,
    }
}

impl Ctx<'_> {
    fn policies(&self) -> &'static [PolicyDef] {
        &LIBRARY[..self.spec.policies]
    }

    fn template(&mut self, system: bool) -> Template {
        let exception = format!(
            "{}-{}",
            *self.rng.pick(&[
                "allow-legacy",
                "ci-exemption",
                "vendor-image",
                "break-glass"
            ]),
            self.rng.suffix(4)
        );
        let strictness = if system {
            4.0
        } else {
            // Teams differ: some are much more compliant than others.
            [0.3, 0.6, 1.0, 1.0, 1.4, 2.0][self.rng.below(6) as usize]
        };
        let verdicts = self
            .policies()
            .iter()
            .map(|p| {
                p.rules
                    .iter()
                    .map(|_| {
                        let roll = self.rng.below(10_000) as f64 / 10_000.0;
                        if roll < 0.004 {
                            Verdict::Error
                        } else if roll < 0.016 || (system && roll < 0.25) {
                            Verdict::Skip
                        } else if roll < (p.fail_rate * strictness).min(0.95) {
                            Verdict::Fail
                        } else {
                            Verdict::Pass
                        }
                    })
                    .collect()
            })
            .collect();
        Template {
            verdicts,
            exception,
        }
    }

    fn namespace_report(&mut self, ns: &str) {
        let uid = self.rng.uid();
        let p = NAMESPACE_POLICY;
        let pass = !self.rng.chance(p.fail_rate);
        let rule = p.rules[0];
        let ts = self.timestamp();
        let result = if pass {
            json!({
                "message": format!("validation rule '{rule}' passed."),
                "policy": p.name,
                "result": "pass",
                "rule": rule,
                "scored": true,
                "source": "kyverno",
                "timestamp": ts,
                "properties": {"process": "background scan"},
            })
        } else {
            json!({
                "message": format!("validation error: {} rule {rule} failed at path {}", p.message, p.path),
                "policy": p.name,
                "result": "fail",
                "rule": rule,
                "scored": true,
                "source": "kyverno",
                "timestamp": ts,
                "properties": {"process": "background scan"},
            })
        };
        let subject = json!({"apiVersion": "v1", "kind": "Namespace", "name": ns, "uid": uid});
        let value = self.report(
            GenKind::ClusterPolicyReport,
            None,
            &uid,
            subject,
            vec![result],
        );
        self.out.push(Generated {
            kind: GenKind::ClusterPolicyReport,
            subject: "Namespace",
            value,
        });
    }

    /// Adds the reports of one workload, at most `left` of them.
    fn workload(&mut self, ns: &str, name: &str, shape: &str, system: bool, left: usize) {
        let t = self.template(system);
        let hash = self.rng.suffix(10);
        match shape {
            "Deployment" => {
                let replicas = *self.rng.pick(&[1u64, 2, 2, 2, 3, 3, 3, 4, 5, 6]);
                self.controller(ns, name, "apps/v1", "Deployment", "autogen-", &t);
                let rs = format!("{name}-{hash}");
                self.controller(ns, &rs, "apps/v1", "ReplicaSet", "autogen-", &t);
                if self.rng.chance(0.3) {
                    // An old ReplicaSet scaled to zero still has a report.
                    let old = format!("{name}-{}", self.rng.suffix(10));
                    self.controller(ns, &old, "apps/v1", "ReplicaSet", "autogen-", &t);
                }
                for _ in 0..replicas {
                    let pod = format!("{rs}-{}", self.rng.suffix(5));
                    self.pod(ns, &pod, &t);
                }
            }
            "StatefulSet" => {
                let replicas = self.rng.range(1, 3);
                self.controller(ns, name, "apps/v1", "StatefulSet", "autogen-", &t);
                for i in 0..replicas {
                    self.pod(ns, &format!("{name}-{i}"), &t);
                }
            }
            "DaemonSet" => {
                let nodes = self.rng.range(3, 6).min(left.max(1) as u64);
                self.controller(ns, name, "apps/v1", "DaemonSet", "autogen-", &t);
                for _ in 0..nodes {
                    let pod = format!("{name}-{}", self.rng.suffix(5));
                    self.pod(ns, &pod, &t);
                }
            }
            "CronJob" => {
                self.controller(ns, name, "batch/v1", "CronJob", "autogen-cronjob-", &t);
                let runs = self.rng.range(1, 3);
                let minute = 28_860_000 + self.rng.below(100_000);
                for i in 0..runs {
                    let job = format!("{name}-{}", minute + i * 60);
                    self.controller(ns, &job, "batch/v1", "Job", "autogen-", &t);
                    let pod = format!("{job}-{}", self.rng.suffix(5));
                    self.pod(ns, &pod, &t);
                }
            }
            _ => {
                let pod = format!("{name}-{hash}");
                self.pod(ns, &pod, &t);
            }
        }
    }

    fn timestamp(&mut self) -> Value {
        let seconds = self.now - self.rng.below(3600);
        json!({"nanos": 0, "seconds": seconds})
    }

    fn pod(&mut self, ns: &str, name: &str, t: &Template) {
        self.resource(ns, name, "v1", "Pod", "", t);
    }

    fn controller(
        &mut self,
        ns: &str,
        name: &str,
        api_version: &str,
        kind: &'static str,
        prefix: &str,
        t: &Template,
    ) {
        self.resource(ns, name, api_version, kind, prefix, t);
    }

    fn resource(
        &mut self,
        ns: &str,
        name: &str,
        api_version: &str,
        kind: &'static str,
        prefix: &str,
        t: &Template,
    ) {
        let uid = self.rng.uid();
        let ts = self.timestamp();
        let spec_path = match kind {
            "Pod" => "",
            "CronJob" => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        };
        let mut results = Vec::new();
        for (p, verdicts) in self.policies().iter().zip(&t.verdicts) {
            for (rule, verdict) in p.rules.iter().zip(verdicts) {
                let rule = format!("{prefix}{rule}");
                results.push(result(p, &rule, *verdict, spec_path, &t.exception, &ts));
            }
        }
        let subject = json!({
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "namespace": ns,
            "uid": uid,
        });
        let value = self.report(GenKind::PolicyReport, Some(ns), &uid, subject, results);
        self.out.push(Generated {
            kind: GenKind::PolicyReport,
            subject: kind,
            value,
        });
    }

    fn report(
        &mut self,
        kind: GenKind,
        ns: Option<&str>,
        uid: &str,
        subject: Value,
        results: Vec<Value>,
    ) -> Value {
        let created = 1_730_000_000 + self.rng.below(1_000_000);
        let mut meta = Map::new();
        meta.insert("creationTimestamp".into(), Value::String(rfc3339(created)));
        meta.insert("generation".into(), json!(self.rng.range(1, 40)));
        meta.insert(
            "labels".into(),
            json!({"app.kubernetes.io/managed-by": "kyverno"}),
        );
        meta.insert("name".into(), Value::String(uid.to_owned()));
        if let Some(ns) = ns {
            meta.insert("namespace".into(), Value::String(ns.to_owned()));
        }
        let mut owner = subject.clone();
        if let Some(o) = owner.as_object_mut() {
            o.remove("namespace");
        }
        meta.insert("ownerReferences".into(), Value::Array(vec![owner]));
        meta.insert("uid".into(), Value::String(self.rng.uid()));
        let summary = summarize(&results);
        let mut obj = Map::new();
        obj.insert(
            "apiVersion".into(),
            Value::String("wgpolicyk8s.io/v1alpha2".into()),
        );
        obj.insert("kind".into(), Value::String(kind.kind().into()));
        obj.insert("metadata".into(), Value::Object(meta));
        obj.insert("results".into(), Value::Array(results));
        obj.insert("scope".into(), subject);
        obj.insert("summary".into(), summary);
        Value::Object(obj)
    }
}

/// The `summary` block for these results.
pub fn summarize(results: &[Value]) -> Value {
    let mut n = [0u64; 5];
    for r in results {
        let i = match r["result"].as_str() {
            Some("pass") => 0,
            Some("fail") => 1,
            Some("warn") => 2,
            Some("error") => 3,
            _ => 4,
        };
        n[i] += 1;
    }
    json!({"error": n[3], "fail": n[1], "pass": n[0], "skip": n[4], "warn": n[2]})
}

/// Builds one result as Kyverno writes it.
fn result(
    p: &PolicyDef,
    rule: &str,
    verdict: Verdict,
    spec_path: &str,
    exception: &str,
    ts: &Value,
) -> Value {
    let mut props = Map::new();
    props.insert("process".into(), Value::String("background scan".into()));
    let (outcome, message) = match verdict {
        Verdict::Pass => (
            "pass",
            match p.check {
                Check::Validate => format!("validation rule '{rule}' passed."),
                Check::PodSecurity(_) => format!("Validation rule '{rule}' passed."),
            },
        ),
        Verdict::Fail => (
            if p.scored { "fail" } else { "warn" },
            match p.check {
                Check::Validate => format!(
                    "validation error: {} rule {rule} failed at path {spec_path}{}",
                    p.message, p.path
                ),
                Check::PodSecurity(level) => format!(
                    "Validation rule '{rule}' failed. It violates PodSecurity \"{level}:latest\": \
                     (Forbidden reason: {}, field error list: [spec.containers[0].securityContext.{} is forbidden, forbidden values found: {}])",
                    if level == "baseline" {
                        "privileged"
                    } else {
                        "allowPrivilegeEscalation != false"
                    },
                    if level == "baseline" {
                        "privileged"
                    } else {
                        "allowPrivilegeEscalation"
                    },
                    if level == "baseline" { "true" } else { "nil" }
                ),
            },
        ),
        Verdict::Error => (
            "error",
            format!(
                "failed to check deny conditions: failed to substitute variables in condition key: \
                 failed to resolve request.object{spec_path}/spec/containers[0].image at path : \
                 JMESPath query failed: Unknown key \"image\" in path (rule {rule})"
            ),
        ),
        Verdict::Skip => {
            props.insert("exceptions".into(), Value::String(exception.to_owned()));
            (
                "skip",
                format!("rule {rule} skipped due to policy exception kyverno/{exception}"),
            )
        }
    };
    if let Check::PodSecurity(level) = p.check {
        props.insert("standard".into(), Value::String(level.into()));
        props.insert("version".into(), Value::String("latest".into()));
        if verdict == Verdict::Fail {
            let controls = if level == "baseline" {
                "privileged"
            } else {
                "allowPrivilegeEscalation,capabilities,runAsNonRoot,seccompProfile"
            };
            props.insert("controls".into(), Value::String(controls.into()));
        }
    }
    let mut r = Map::new();
    if !p.category.is_empty() {
        r.insert("category".into(), Value::String(p.category.into()));
    }
    r.insert("message".into(), Value::String(message));
    r.insert("policy".into(), Value::String(p.name.into()));
    r.insert("properties".into(), Value::Object(props));
    r.insert("result".into(), Value::String(outcome.into()));
    r.insert("rule".into(), Value::String(rule.into()));
    r.insert("scored".into(), Value::Bool(p.scored));
    if !p.severity.is_empty() {
        r.insert("severity".into(), Value::String(p.severity.into()));
    }
    r.insert("source".into(), Value::String("kyverno".into()));
    r.insert("timestamp".into(), ts.clone());
    Value::Object(r)
}

/// Seconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Sets the outcome of the result at `index` of a report (and its message,
/// timestamp and the summary) the way a re-scan would. Returns the old outcome.
pub fn set_outcome(report: &mut Value, index: usize, outcome: &str, seconds: u64) -> String {
    let results = report["results"]
        .as_array_mut()
        .expect("generated reports have results");
    let r = &mut results[index];
    let old = r["result"].as_str().unwrap_or("").to_owned();
    let rule = r["rule"].as_str().unwrap_or("").to_owned();
    r["result"] = Value::String(outcome.to_owned());
    r["message"] = Value::String(match outcome {
        "pass" => format!("validation rule '{rule}' passed."),
        _ => format!("validation error: rule {rule} failed at path /spec/containers/0/"),
    });
    r["timestamp"] = json!({"nanos": 0, "seconds": seconds});
    let summary = summarize(results);
    report["summary"] = summary;
    old
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_exact_size() {
        let spec = Spec::with_reports(500, 7);
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.reports.len(), 500);
        assert_eq!(
            serde_json::to_string(&a.to_list()).unwrap(),
            serde_json::to_string(&b.to_list()).unwrap()
        );
        let c = generate(&Spec::with_reports(500, 8));
        assert_ne!(
            serde_json::to_string(&a.to_list()).unwrap(),
            serde_json::to_string(&c.to_list()).unwrap()
        );
    }

    #[test]
    fn shape_matches_kyverno() {
        let set = generate(&Spec::with_reports(2000, 1));
        let counts = set.expected();
        assert_eq!(total(&counts), set.total_results());
        for outcome in ["pass", "fail", "warn", "error", "skip"] {
            assert!(
                counts.keys().any(|k| k[5] == outcome),
                "no {outcome} results"
            );
        }
        let pods: Vec<_> = set.reports.iter().filter(|r| r.subject == "Pod").collect();
        assert!(pods.len() > set.reports.len() / 2);
        let p = &pods[0].value;
        assert_eq!(p["metadata"]["name"], p["scope"]["uid"]);
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Pod");
        assert_eq!(
            p["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "kyverno"
        );
        assert!(p["results"][0].get("resources").is_none());
        assert_eq!(p["results"][0]["properties"]["process"], "background scan");
        assert!(p["results"][0]["timestamp"]["seconds"].is_u64());
        let rs = set
            .reports
            .iter()
            .find(|r| r.subject == "ReplicaSet")
            .expect("a ReplicaSet report");
        assert!(
            rs.value["results"][0]["rule"]
                .as_str()
                .unwrap()
                .starts_with("autogen-")
        );
        let cj = set
            .reports
            .iter()
            .find(|r| r.subject == "CronJob")
            .expect("a CronJob report");
        assert!(
            cj.value["results"][0]["rule"]
                .as_str()
                .unwrap()
                .starts_with("autogen-cronjob-")
        );
        assert!(
            set.reports
                .iter()
                .any(|r| r.kind == GenKind::ClusterPolicyReport)
        );
        // About 20 results per Pod report with the default policies.
        assert_eq!(pods[0].results(), 20);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_731_403_200), "2024-11-12T09:20:00Z");
    }
}
