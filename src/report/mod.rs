//! The report format: the verdicts, a result's subject, and (`decode`) the
//! one-pass decoder that reduces a report to the [`Report`] the aggregator
//! reads.

mod decode;

use serde::Deserialize;

use crate::decode::{AnyStr, DecodeError, Text};
pub use decode::{Document, DocumentSeed, ItemSink, Report, ResultView, SubjectView, WithMessages};

/// The verdict of one result.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// Violation of an unscored policy.
    Warn,
    /// The rule could not be evaluated.
    Error,
    /// The rule did not apply (for example, a PolicyException).
    Skip,
}

impl Outcome {
    /// Every outcome, in severity order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::Warn,
        Outcome::Error,
        Outcome::Skip,
    ];

    /// The lowercase name used in reports and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Skip => "skip",
        }
    }
}

/// A reference to a Kubernetes object: a result's subject or a report's scope.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Subject<'a> {
    /// Kind of the object.
    #[serde(borrow, default)]
    pub kind: Option<Text<'a>>,
    /// Namespace, empty for cluster-scoped objects.
    #[serde(borrow, default)]
    pub namespace: Option<Text<'a>>,
    /// Name.
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    /// UID.
    #[serde(borrow, default)]
    pub uid: Option<Text<'a>>,
    /// `apiVersion`, checked for type only.
    #[serde(default, rename = "apiVersion")]
    api_version: Option<AnyStr>,
}
