//! The object kinds the exporter reads, with their API coordinates.

use std::fmt;

use kube::core::ApiResource;

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

    /// The report kinds.
    pub const REPORTS: [Kind; 4] = [
        Kind::PolicyReport,
        Kind::ClusterPolicyReport,
        Kind::Report,
        Kind::ClusterReport,
    ];

    /// The policy kinds.
    pub const POLICIES: [Kind; 6] = [
        Kind::ClusterPolicy,
        Kind::Policy,
        Kind::ValidatingPolicy,
        Kind::NamespacedValidatingPolicy,
        Kind::ImageValidatingPolicy,
        Kind::NamespacedImageValidatingPolicy,
    ];

    /// The `policies.kyverno.io` (CEL) policy kinds, whose mode comes from
    /// `validationActions`.
    pub const CEL_POLICIES: [Kind; 4] = [
        Kind::ValidatingPolicy,
        Kind::NamespacedValidatingPolicy,
        Kind::ImageValidatingPolicy,
        Kind::NamespacedImageValidatingPolicy,
    ];

    /// API group ("" for core).
    pub fn group(self) -> &'static str {
        match self {
            Self::PolicyReport | Self::ClusterPolicyReport => "wgpolicyk8s.io",
            Self::Report | Self::ClusterReport => "openreports.io",
            Self::Event | Self::Namespace => "",
            Self::ClusterPolicy | Self::Policy => "kyverno.io",
            Self::ValidatingPolicy
            | Self::NamespacedValidatingPolicy
            | Self::ImageValidatingPolicy
            | Self::NamespacedImageValidatingPolicy => "policies.kyverno.io",
        }
    }

    /// The API versions read, in the order discovery tries them: it picks
    /// the first one the cluster serves, so `wgpolicyk8s.io/v1beta1` reports
    /// are read only where `v1alpha2` is not served for that kind. Files may
    /// use any of them. For the CEL policy kinds this list only bounds what
    /// files may hold: discovery takes the version the API server prefers
    /// (see [`Kind::follows_preferred_version`]).
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Self::PolicyReport | Self::ClusterPolicyReport => &["v1alpha2", "v1beta1"],
            Self::Report | Self::ClusterReport => &["v1alpha1"],
            Self::Event | Self::Namespace => &["v1"],
            Self::ClusterPolicy | Self::Policy => &["v1"],
            Self::ValidatingPolicy
            | Self::NamespacedValidatingPolicy
            | Self::ImageValidatingPolicy
            | Self::NamespacedImageValidatingPolicy => &["v1", "v1beta1", "v1alpha1"],
        }
    }

    /// Whether discovery takes whatever version the API server prefers for
    /// this kind (the CEL policy kinds, which Kyverno keeps promoting)
    /// rather than the first of [`Kind::versions`] it serves.
    pub fn follows_preferred_version(self) -> bool {
        Self::CEL_POLICIES.contains(&self)
    }

    /// The `kind` field.
    pub fn kind(self) -> &'static str {
        match self {
            Self::PolicyReport => "PolicyReport",
            Self::ClusterPolicyReport => "ClusterPolicyReport",
            Self::Report => "Report",
            Self::ClusterReport => "ClusterReport",
            Self::Event => "Event",
            Self::Namespace => "Namespace",
            Self::ClusterPolicy => "ClusterPolicy",
            Self::Policy => "Policy",
            Self::ValidatingPolicy => "ValidatingPolicy",
            Self::NamespacedValidatingPolicy => "NamespacedValidatingPolicy",
            Self::ImageValidatingPolicy => "ImageValidatingPolicy",
            Self::NamespacedImageValidatingPolicy => "NamespacedImageValidatingPolicy",
        }
    }

    /// The plural resource name used in URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Self::PolicyReport => "policyreports",
            Self::ClusterPolicyReport => "clusterpolicyreports",
            Self::Report => "reports",
            Self::ClusterReport => "clusterreports",
            Self::Event => "events",
            Self::Namespace => "namespaces",
            Self::ClusterPolicy => "clusterpolicies",
            Self::Policy => "policies",
            Self::ValidatingPolicy => "validatingpolicies",
            Self::NamespacedValidatingPolicy => "namespacedvalidatingpolicies",
            Self::ImageValidatingPolicy => "imagevalidatingpolicies",
            Self::NamespacedImageValidatingPolicy => "namespacedimagevalidatingpolicies",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Self::PolicyReport
                | Self::Report
                | Self::Event
                | Self::Policy
                | Self::NamespacedValidatingPolicy
                | Self::NamespacedImageValidatingPolicy
        )
    }

    /// Whether this is a policy kind.
    pub fn is_policy(self) -> bool {
        Self::POLICIES.contains(&self)
    }

    /// Whether this is a report kind.
    pub fn is_report(self) -> bool {
        Self::REPORTS.contains(&self)
    }

    /// `plural.group` (or `plural` for core), the `resource` label value.
    pub fn resource(self) -> &'static str {
        match self {
            Self::PolicyReport => "policyreports.wgpolicyk8s.io",
            Self::ClusterPolicyReport => "clusterpolicyreports.wgpolicyk8s.io",
            Self::Report => "reports.openreports.io",
            Self::ClusterReport => "clusterreports.openreports.io",
            Self::Event => "events",
            Self::Namespace => "namespaces",
            Self::ClusterPolicy => "clusterpolicies.kyverno.io",
            Self::Policy => "policies.kyverno.io",
            Self::ValidatingPolicy => "validatingpolicies.policies.kyverno.io",
            Self::NamespacedValidatingPolicy => "namespacedvalidatingpolicies.policies.kyverno.io",
            Self::ImageValidatingPolicy => "imagevalidatingpolicies.policies.kyverno.io",
            Self::NamespacedImageValidatingPolicy => {
                "namespacedimagevalidatingpolicies.policies.kyverno.io"
            }
        }
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
