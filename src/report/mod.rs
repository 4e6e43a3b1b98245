//! The report format: the verdicts, the strings shared with the Event
//! decoder, and ([`decode`]) the one-pass decoder that reduces a report to
//! the [`Report`] the aggregator reads.

mod decode;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

pub use decode::{Document, DocumentSeed, ItemSink, Report, ResultView, SubjectView};

/// Whether the decoder keeps result messages: off for `serve`, which never
/// shows them; `summary --failing` turns it on before any source starts.
static KEEP_MESSAGES: AtomicBool = AtomicBool::new(false);

/// Keep each result's message in decoded reports from now on
/// ([`ResultView::message`]), for the rest of the process.
pub fn keep_messages() {
    KEEP_MESSAGES.store(true, Ordering::Relaxed);
}

fn keeps_messages() -> bool {
    KEEP_MESSAGES.load(Ordering::Relaxed)
}

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

/// A string that borrows from the input when it has no escapes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Checks that a value is a string without keeping it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
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

/// Why a report could not be decoded.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct DecodeError {
    /// Which part of the report, such as `results[3].result`.
    pub field: String,
    /// The decoder's explanation.
    pub reason: String,
}
