//! Objects other than reports as sources hand them over: identity in a lean
//! `metadata`, the content kept as unparsed JSON so that one bad object can
//! never break a list page or a file. The aggregator decodes the content.
//! (Reports are decoded by [`crate::report::Report`] as they are read.)

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Any other object (Events, policies): the whole object kept unparsed.
#[derive(Clone, Debug)]
pub struct RawObject {
    /// Only name, namespace, uid and resourceVersion are kept.
    pub metadata: ObjectMeta,
    /// The complete object as JSON text.
    pub raw: Box<RawValue>,
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct MetaOnly {
            #[serde(default, deserialize_with = "lean_meta")]
            metadata: ObjectMeta,
        }
        let raw = Box::<RawValue>::deserialize(d)?;
        let meta: MetaOnly = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(RawObject {
            metadata: meta.metadata,
            raw,
        })
    }
}

impl RawObject {
    /// Wrap an already decoded JSON object (files mode).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(value)?;
        serde_json::from_str(&text)
    }
}

/// Decode metadata keeping only what identifies the object, so that large
/// `managedFields` or annotations are skipped instead of allocated.
pub(crate) fn lean_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Lean {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
    }
    let lean = Option::<Lean>::deserialize(d)?;
    Ok(lean
        .map(|l| ObjectMeta {
            name: l.name,
            namespace: l.namespace,
            uid: l.uid,
            resource_version: l.resource_version,
            ..ObjectMeta::default()
        })
        .unwrap_or_default())
}

/// `kube::Resource` for a type watched through an [`ApiResource`], its
/// metadata at the field path given (`metadata` unless named).
macro_rules! dynamic_resource {
    ($t:ty) => {
        dynamic_resource!($t, metadata);
    };
    ($t:ty, $($meta:tt).+) => {
        impl kube::Resource for $t {
            type DynamicType = ApiResource;
            type Scope = DynamicResourceScope;

            fn kind(dt: &ApiResource) -> Cow<'_, str> {
                Cow::Borrowed(&dt.kind)
            }
            fn group(dt: &ApiResource) -> Cow<'_, str> {
                Cow::Borrowed(&dt.group)
            }
            fn version(dt: &ApiResource) -> Cow<'_, str> {
                Cow::Borrowed(&dt.version)
            }
            fn api_version(dt: &ApiResource) -> Cow<'_, str> {
                Cow::Borrowed(&dt.api_version)
            }
            fn plural(dt: &ApiResource) -> Cow<'_, str> {
                Cow::Borrowed(&dt.plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.$($meta).+
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.$($meta).+
            }
        }
    };
}

dynamic_resource!(crate::report::Report);
dynamic_resource!(crate::report::WithMessages, 0.metadata);
dynamic_resource!(RawObject);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_object_keeps_the_whole_text_and_lean_metadata() {
        let o: RawObject = serde_json::from_str(
            r#"{"kind":"Event","metadata":{"name":"e","namespace":"n","uid":"u","managedFields":[{}]},"reason":"x"}"#,
        )
        .expect("valid");
        assert_eq!(o.metadata.name.as_deref(), Some("e"));
        assert_eq!(o.metadata.uid.as_deref(), Some("u"));
        assert!(o.metadata.managed_fields.is_none());
        assert!(o.raw.get().contains("\"reason\":\"x\""));
        assert!(serde_json::from_str::<RawObject>(r#"{"metadata":{"name":1}}"#).is_err());
    }
}
