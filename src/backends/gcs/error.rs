//! What GCS's answers and failures mean, as this package's errors. GCS errors are JSON
//! (`{"error": {"code", "message", "errors": [{"reason"}]}}`); only the reason and status are
//! used, so no message from the service (which may quote the request) reaches the caller.

use serde_json::Value;

use crate::core::error::Error;
use crate::core::key::Key;

/// The `reason` of a GCS JSON error body ("notFound", "conditionNotMet"), if it has one.
pub fn error_reason(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let reason = error.and_then(|e| e.get("errors")).and_then(|e| e.get(0)).and_then(|e| e.get("reason"));
    reason.and_then(Value::as_str).unwrap_or_default().chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

/// What an error answer means, from its status and reason. A 404 is a missing object here;
/// the store tells a missing bucket apart (see `GcsBackend::not_found`).
pub fn service_error(operation: &str, key: &Key, status: u16, reason: &str) -> Error {
    let reason = if reason.is_empty() { String::new() } else { format!(" ({reason})") };
    match status {
        404 => Error::NotFound { key: key.to_string() },
        401 | 403 => Error::PermissionDenied(format!(
            "GCS refused {operation}{reason}: check the service account's key and its roles on the bucket"
        )),
        409 | 412 => Error::Precondition { key: key.to_string(), reason: format!("{operation}{reason}") },
        429 | 500..=599 => Error::Unavailable(format!("GCS answered {status}{reason} to {operation}")),
        _ => Error::Service { status, message: format!("GCS answered {status}{reason} to {operation}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_statuses_become_our_errors() {
        let body = br#"{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold.","errors":[{"reason":"conditionNotMet"}]}}"#;
        assert_eq!(error_reason(body), "conditionNotMet");
        assert_eq!(error_reason(b"<html>"), "");
        let key = Key::parse("a").unwrap();
        let create_only = crate::core::backend::PutOptions { if_not_exists: true, ..Default::default() };
        let refused = create_only.refusal(&key, service_error("the upload", &key, 412, "conditionNotMet"));
        assert_eq!(refused.code(), "FILE_ALREADY_EXISTS");
        assert_eq!(service_error("x", &key, 403, "").code(), "PERMISSION_DENIED");
        assert_eq!(service_error("x", &key, 503, "").code(), "STORAGE_UNAVAILABLE");
        assert_eq!(service_error("x", &key, 404, "notFound").code(), "FILE_NOT_FOUND");
    }
}
