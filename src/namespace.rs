//! Namespaces as policy overrides see them: a name and its labels, nothing
//! else (the cluster source watches only their metadata).

use serde::Deserialize;

use crate::decode::DecodeError;
use crate::policy::Labels;

/// A Namespace's name and labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
}

#[derive(Deserialize)]
struct NamespaceIn {
    #[serde(default)]
    metadata: MetaIn,
}

#[derive(Deserialize, Default)]
struct MetaIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    labels: Option<Labels>,
}

/// Decode a Namespace, or its `PartialObjectMetadata`.
pub fn decode(raw: &str) -> Result<NamespaceInfo, DecodeError> {
    let n: NamespaceIn = serde_json::from_str(raw).map_err(|e| DecodeError {
        field: "namespace".into(),
        reason: e.to_string(),
    })?;
    let name = n
        .metadata
        .name
        .filter(|n| !n.is_empty())
        .ok_or(DecodeError {
            field: "metadata.name".into(),
            reason: "missing".into(),
        })?;
    Ok(NamespaceInfo {
        name,
        labels: n.metadata.labels.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_and_labels_only() {
        let n = decode(
            r#"{"kind":"PartialObjectMetadata","metadata":{"name":"prod","labels":{"tier":"prod"}}}"#,
        )
        .expect("valid");
        assert_eq!(n.name, "prod");
        assert_eq!(n.labels.get("tier").map(String::as_str), Some("prod"));
        assert!(decode(r#"{"metadata":{}}"#).is_err());
        assert!(decode(r#"{"metadata":{"name":"x","labels":{"a":1}}}"#).is_err());
    }
}
