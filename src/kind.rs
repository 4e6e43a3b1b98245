//! The object kinds the exporter reads, with their API coordinates, and the
//! `resource` label values of everything it reads (each kind's, and
//! [`FILE_RESOURCE`] for files).

use std::fmt;

use kube::core::ApiResource;

/// The `resource` label of an unreadable file, here beside the kinds' own
/// `resource` values so that the files source that sends it and the
/// aggregate that counts it (in `policyreport_exporter_invalid_objects_total`,
/// from the start, whatever the source) read it without importing each other.
pub const FILE_RESOURCE: &str = "files";

/// Every kind of object the exporter reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport (namespaced).
    PolicyReport,
    /// `wgpolicyk8s.io/v1alpha2` ClusterPolicyReport (cluster-scoped).
    ClusterPolicyReport,
    /// `openreports.io/v1alpha1` Report (namespaced).
    Report,
    /// `openreports.io/v1alpha1` ClusterReport (cluster-scoped).
    ClusterReport,
    /// Core `v1` Event (Kyverno's PolicyViolation events).
    Event,
    /// Core `v1` Namespace: only its name and labels are read (watched as
    /// metadata), to evaluate the `namespaceSelector` of policy overrides.
    Namespace,
    /// `kyverno.io/v1` ClusterPolicy.
    ClusterPolicy,
    /// `kyverno.io/v1` Policy (namespaced).
    Policy,
    /// `policies.kyverno.io` ValidatingPolicy (cluster-scoped, CEL).
    ValidatingPolicy,
    /// `policies.kyverno.io` NamespacedValidatingPolicy (namespaced, CEL).
    NamespacedValidatingPolicy,
    /// `policies.kyverno.io` ImageValidatingPolicy (cluster-scoped, CEL).
    ImageValidatingPolicy,
    /// `policies.kyverno.io` NamespacedImageValidatingPolicy (namespaced, CEL).
    NamespacedImageValidatingPolicy,
}

/// What the exporter reads a kind for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A report: its results are counted per policy and namespace.
    Report,
    /// Kyverno's admission Events (blocked, or let through by Audit).
    Admission,
    /// Namespace labels, for the `namespaceSelector` of policy overrides.
    NamespaceLabels,
    /// A `kyverno.io` policy: its mode comes from `validationFailureAction`.
    Policy,
    /// A `policies.kyverno.io` (CEL) policy: its mode comes from
    /// `validationActions`, and discovery takes the version the API server
    /// prefers, since Kyverno keeps promoting these kinds.
    CelPolicy,
}

/// One kind: its API coordinates and how it is read.
#[derive(Debug)]
pub struct Row {
    /// The `kind` field.
    pub kind: &'static str,
    /// API group ("" for core).
    pub group: &'static str,
    /// The API versions read, in the order discovery tries them: it picks
    /// the first one the cluster serves, so `wgpolicyk8s.io/v1beta1` reports
    /// are read only where `v1alpha2` is not served for that kind. Files may
    /// use any of them. For [`Role::CelPolicy`] this only bounds what files
    /// may hold: discovery takes the version the API server prefers.
    pub versions: &'static [&'static str],
    /// The plural resource name used in URLs.
    pub plural: &'static str,
    /// `plural.group` (or `plural` for core), the `resource` label value.
    pub resource: &'static str,
    /// Whether objects of this kind live in a namespace.
    pub namespaced: bool,
    /// What the exporter reads it for.
    pub role: Role,
    /// Whether lists and watches ask for metadata only
    /// (`PartialObjectMetadata`): the kind's metadata is all that is read.
    pub metadata_only: bool,
    /// The field selector of lists and watches, filtering on the server.
    pub field_selector: Option<&'static str>,
}

const REPORT_VERSIONS: &[&str] = &["v1alpha2", "v1beta1"];
const CEL_VERSIONS: &[&str] = &["v1", "v1beta1", "v1alpha1"];

const fn row(
    kind: &'static str,
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    resource: &'static str,
    namespaced: bool,
    role: Role,
) -> Row {
    Row {
        kind,
        group,
        versions,
        plural,
        resource,
        namespaced,
        role,
        metadata_only: false,
        field_selector: None,
    }
}

/// One row per [`Kind`], in the order of its variants.
#[rustfmt::skip]
const ROWS: [Row; 12] = [
    row("PolicyReport", "wgpolicyk8s.io", REPORT_VERSIONS, "policyreports", "policyreports.wgpolicyk8s.io", true, Role::Report),
    row("ClusterPolicyReport", "wgpolicyk8s.io", REPORT_VERSIONS, "clusterpolicyreports", "clusterpolicyreports.wgpolicyk8s.io", false, Role::Report),
    row("Report", "openreports.io", &["v1alpha1"], "reports", "reports.openreports.io", true, Role::Report),
    row("ClusterReport", "openreports.io", &["v1alpha1"], "clusterreports", "clusterreports.openreports.io", false, Role::Report),
    Row { field_selector: Some("reason=PolicyViolation"), ..row("Event", "", &["v1"], "events", "events", true, Role::Admission) },
    Row { metadata_only: true, ..row("Namespace", "", &["v1"], "namespaces", "namespaces", false, Role::NamespaceLabels) },
    row("ClusterPolicy", "kyverno.io", &["v1"], "clusterpolicies", "clusterpolicies.kyverno.io", false, Role::Policy),
    row("Policy", "kyverno.io", &["v1"], "policies", "policies.kyverno.io", true, Role::Policy),
    row("ValidatingPolicy", "policies.kyverno.io", CEL_VERSIONS, "validatingpolicies", "validatingpolicies.policies.kyverno.io", false, Role::CelPolicy),
    row("NamespacedValidatingPolicy", "policies.kyverno.io", CEL_VERSIONS, "namespacedvalidatingpolicies", "namespacedvalidatingpolicies.policies.kyverno.io", true, Role::CelPolicy),
    row("ImageValidatingPolicy", "policies.kyverno.io", CEL_VERSIONS, "imagevalidatingpolicies", "imagevalidatingpolicies.policies.kyverno.io", false, Role::CelPolicy),
    row("NamespacedImageValidatingPolicy", "policies.kyverno.io", CEL_VERSIONS, "namespacedimagevalidatingpolicies", "namespacedimagevalidatingpolicies.policies.kyverno.io", true, Role::CelPolicy),
];

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 12] = [
        Kind::PolicyReport,
        Kind::ClusterPolicyReport,
        Kind::Report,
        Kind::ClusterReport,
        Kind::Event,
        Kind::Namespace,
        Kind::ClusterPolicy,
        Kind::Policy,
        Kind::ValidatingPolicy,
        Kind::NamespacedValidatingPolicy,
        Kind::ImageValidatingPolicy,
        Kind::NamespacedImageValidatingPolicy,
    ];

    /// This kind's row of the table.
    pub fn row(self) -> &'static Row {
        &ROWS[self as usize]
    }

    /// API group ("" for core).
    pub fn group(self) -> &'static str {
        self.row().group
    }

    /// See [`Row::versions`].
    pub fn versions(self) -> &'static [&'static str] {
        self.row().versions
    }

    /// The `kind` field.
    pub fn kind(self) -> &'static str {
        self.row().kind
    }

    /// The plural resource name used in URLs.
    pub fn plural(self) -> &'static str {
        self.row().plural
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self.row().namespaced
    }

    /// What the exporter reads this kind for.
    pub fn role(self) -> Role {
        self.row().role
    }

    /// Whether this is a report kind.
    pub fn is_report(self) -> bool {
        self.role() == Role::Report
    }

    /// Whether this is a policy kind, CEL or not.
    pub fn is_policy(self) -> bool {
        matches!(self.role(), Role::Policy | Role::CelPolicy)
    }

    /// `plural.group` (or `plural` for core), the `resource` label value.
    pub fn resource(self) -> &'static str {
        self.row().resource
    }

    /// The kind for an `apiVersion` and `kind` pair, if the exporter reads it.
    /// Events are accepted from `v1` and `events.k8s.io/v1`.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Self> {
        if kind == "Event" && matches!(api_version, "v1" | "events.k8s.io/v1") {
            return Some(Self::Event);
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        Self::ALL
            .into_iter()
            .find(|k| k.kind() == kind && k.group() == group && k.versions().contains(&version))
    }

    /// The policy kind named `kind`, whatever its version.
    pub fn policy_named(kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.is_policy() && k.kind() == kind)
    }

    /// The kube-rs description of this resource at an API version.
    pub fn api_resource(self, version: &str) -> ApiResource {
        let group = self.group();
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: self.kind().into(),
            plural: self.plural().into(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_variants() {
        for k in Kind::ALL {
            assert_eq!(k.kind(), format!("{k:?}"));
            let resource = if k.group().is_empty() {
                k.plural().to_owned()
            } else {
                format!("{}.{}", k.plural(), k.group())
            };
            assert_eq!(k.resource(), resource);
            let lower = k.kind().to_lowercase();
            let plural = match lower.strip_suffix('y') {
                Some(stem) => format!("{stem}ies"),
                None => format!("{lower}s"),
            };
            assert_eq!(k.plural(), plural);
        }
    }

    #[test]
    fn types_round_trip() {
        for k in Kind::ALL {
            for v in k.versions() {
                let av = k.api_resource(v).api_version;
                assert_eq!(Kind::from_type(&av, k.kind()), Some(k), "{av} {k}");
            }
        }
        assert_eq!(
            Kind::from_type("events.k8s.io/v1", "Event"),
            Some(Kind::Event)
        );
        assert_eq!(Kind::from_type("v1", "ConfigMap"), None);
        assert_eq!(
            Kind::from_type("wgpolicyk8s.io/v1beta1", "PolicyReport"),
            Some(Kind::PolicyReport)
        );
        assert_eq!(
            Kind::from_type("wgpolicyk8s.io/v1alpha1", "PolicyReport"),
            None
        );
        assert_eq!(Kind::from_type("v1", "Namespace"), Some(Kind::Namespace));
        assert_eq!(
            Kind::from_type("policies.kyverno.io/v1", "NamespacedImageValidatingPolicy"),
            Some(Kind::NamespacedImageValidatingPolicy)
        );
        assert_eq!(
            Kind::from_type("reports.kyverno.io/v1", "EphemeralReport"),
            None
        );
    }
}
