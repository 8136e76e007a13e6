//! GCS object resources (JSON) as this package's object descriptions.

use serde_json::Value;

use crate::client::response::rfc3339;
use crate::core::backend::{ListEntry, ObjectMeta, DEFAULT_CONTENT_TYPE};
use crate::core::key::Key;

/// The fields asked of object resources: what `object_meta` reads, and the generation.
pub const OBJECT_FIELDS: &str = "name,size,contentType,etag,updated,metadata,generation,md5Hash";

fn text<'v>(object: &'v Value, field: &str) -> Option<&'v str> {
    object.get(field).and_then(Value::as_str)
}

/// GCS gives sizes and generations as decimal strings.
fn number(object: &Value, field: &str) -> Option<u64> {
    match object.get(field)? {
        Value::String(s) => s.parse().ok(),
        other => other.as_u64(),
    }
}

/// The resource's ETag in quotes, as HTTP (and GCS's own XML API) carries ETags.
pub fn quoted_etag(object: &Value) -> Option<String> {
    text(object, "etag").map(|etag| format!("\"{}\"", etag.trim_matches('"')))
}

pub fn generation(object: &Value) -> Option<u64> {
    number(object, "generation")
}

pub fn object_meta(key: &Key, object: &Value) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: number(object, "size").unwrap_or(0),
        content_type: text(object, "contentType").unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
        etag: quoted_etag(object),
        last_modified: rfc3339(text(object, "updated")),
        metadata: object
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default(),
    }
}

/// A listed object, or none for an item without a name.
pub fn list_entry(object: &Value) -> Option<ListEntry> {
    Some(ListEntry {
        key: text(object, "name")?.to_owned(),
        size: number(object, "size").unwrap_or(0),
        last_modified: rfc3339(text(object, "updated")),
        etag: quoted_etag(object),
    })
}
