//! One error type for every backend. Each variant names a failure a caller can act on;
//! the JS binding maps each to its own error class by `code()`.

use serde_json::{json, Value};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Invalid storage key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    #[error("File not found in storage: {key}")]
    NotFound { key: String },

    #[error("An object already exists at {key}")]
    AlreadyExists { key: String },

    #[error("Precondition failed for {key}: {reason}")]
    Precondition { key: String, reason: String },

    /// The key cannot coexist with another key (a local file where a folder of other keys is).
    #[error("The key {key} conflicts with an existing key: {reason}")]
    KeyConflict { key: String, reason: &'static str },

    #[error("Permission denied: {0}")]
    PermissionDenied(String),

    #[error("Storage unavailable: {0}")]
    Unavailable(String),

    #[error("Storage operation timed out: {0}")]
    Timeout(String),

    /// An upload that would take a prefix over its quota; never stored.
    #[error("Storage quota exceeded: {prefix:?} holds {used} of its {quota} bytes")]
    QuotaExceeded { prefix: String, quota: u64, used: u64 },

    /// A body over a size limit (`maxBytes`, an upload's length); never stored.
    #[error("The body is larger than the {limit} bytes accepted")]
    TooLarge { limit: u64 },

    #[error("{}", invalid_file_type_message(.provided, .allowed))]
    InvalidFileType { provided: String, allowed: Vec<String> },

    #[error("Content length mismatch: {expected} bytes were declared but the body {}", length_outcome(*.expected, *.actual))]
    LengthMismatch { expected: u64, actual: u64 },

    /// `end` as asked, inclusive; none for a range to the end.
    #[error("Range {start}-{} is not satisfiable for an object of {size} bytes", .end.map(|e| e.to_string()).unwrap_or_default())]
    InvalidRange { start: u64, end: Option<u64>, size: u64 },

    #[error("No resumable upload {id} (it was completed, aborted or never created)")]
    UploadNotFound { id: String },

    #[error("The resumable upload {id} has expired")]
    UploadExpired { id: String },

    #[error("The resumable upload {id} is at byte {offset}, not {given}")]
    OffsetMismatch { id: String, offset: u64, given: u64 },

    #[error("The resumable upload {id} cannot complete: {reason}")]
    UploadIncomplete { id: String, reason: String },

    #[error("The body's {algorithm} checksum is not the one given")]
    ChecksumMismatch { algorithm: &'static str },

    #[error("Invalid argument: {0}")]
    InvalidArgument(String),

    #[error("Configuration error: {0}")]
    Configuration(String),

    #[error("Operation aborted: {0}")]
    Aborted(String),

    /// A remote store refused the request for a reason none of the variants above names.
    #[error("{message}")]
    Service { status: u16, message: String },

    #[error("Storage I/O failed ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A bug in this package (a panic caught at the boundary); never the caller's fault.
    #[error("Internal error in the storage layer: {0}")]
    Internal(String),

    /// Several independent operations failed (bulk deletes); each failure is kept.
    #[error("{} of {total} operations failed; first: {}", .failures.len(), .failures[0].1)]
    Partial { total: usize, failures: Vec<(String, Error)> },
}

fn invalid_file_type_message(provided: &str, allowed: &[String]) -> String {
    if allowed.is_empty() {
        format!("Invalid file type: {provided}")
    } else {
        format!("Invalid file type: {provided}. Allowed types: {}", allowed.join(", "))
    }
}

fn length_outcome(expected: u64, actual: u64) -> String {
    if actual > expected {
        format!("went on past {actual} bytes")
    } else {
        format!("ended after {actual} bytes")
    }
}

impl Error {
    /// An I/O failure, with what we were doing when it happened.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// The stable code the JS layer turns into an error class.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidKey { .. } => "INVALID_KEY",
            Error::NotFound { .. } => "FILE_NOT_FOUND",
            Error::AlreadyExists { .. } => "FILE_ALREADY_EXISTS",
            Error::Precondition { .. } => "PRECONDITION_FAILED",
            Error::KeyConflict { .. } => "KEY_CONFLICT",
            Error::PermissionDenied(_) => "PERMISSION_DENIED",
            Error::Unavailable(_) => "STORAGE_UNAVAILABLE",
            Error::Timeout(_) => "STORAGE_TIMEOUT",
            Error::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Error::TooLarge { .. } => "FILE_TOO_LARGE",
            Error::InvalidFileType { .. } => "INVALID_FILE_TYPE",
            Error::LengthMismatch { .. } => "CONTENT_LENGTH_MISMATCH",
            Error::InvalidRange { .. } => "INVALID_RANGE",
            Error::UploadNotFound { .. } => "UPLOAD_NOT_FOUND",
            Error::UploadExpired { .. } => "UPLOAD_EXPIRED",
            Error::OffsetMismatch { .. } => "UPLOAD_OFFSET_MISMATCH",
            Error::UploadIncomplete { .. } => "UPLOAD_INCOMPLETE",
            Error::ChecksumMismatch { .. } => "CHECKSUM_MISMATCH",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::Configuration(_) => "CONFIGURATION_ERROR",
            Error::Aborted(_) => "ABORTED",
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => "PERMISSION_DENIED",
                _ => "STORAGE_ERROR",
            },
            Error::Partial { .. } | Error::Service { .. } | Error::Internal(_) => "STORAGE_ERROR",
        }
    }

    /// Structured context for the error's `details`; never holds credentials.
    pub fn details(&self) -> Value {
        match self {
            Error::InvalidKey { key, reason } => json!({ "key": key, "reason": reason }),
            Error::NotFound { key } | Error::AlreadyExists { key } => json!({ "key": key }),
            Error::Precondition { key, reason } => json!({ "key": key, "reason": reason }),
            Error::KeyConflict { key, reason } => json!({ "key": key, "reason": reason }),
            Error::QuotaExceeded { prefix, quota, used } => {
                json!({ "prefix": prefix, "quotaLimit": quota, "currentUsage": used })
            }
            Error::TooLarge { limit } => json!({ "maxBytes": limit }),
            Error::InvalidFileType { provided, allowed } => {
                json!({ "providedType": provided, "allowedTypes": allowed })
            }
            Error::LengthMismatch { expected, actual } => {
                json!({ "expected": expected, "actual": actual })
            }
            Error::InvalidRange { start, end, size } => {
                json!({ "start": start, "end": end, "size": size })
            }
            Error::UploadNotFound { id } | Error::UploadExpired { id } => json!({ "uploadId": id }),
            Error::OffsetMismatch { id, offset, given } => json!({ "uploadId": id, "offset": offset, "given": given }),
            Error::UploadIncomplete { id, reason } => json!({ "uploadId": id, "reason": reason }),
            Error::ChecksumMismatch { algorithm } => json!({ "algorithm": algorithm }),
            Error::Timeout(_) | Error::Unavailable(_) => json!({ "retryable": true }),
            Error::Service { status, .. } => json!({ "status": status }),
            Error::Io { context, source } => {
                json!({ "operation": context, "errno": source.raw_os_error() })
            }
            Error::Partial { total, failures } => json!({
                "total": total,
                "failures": failures
                    .iter()
                    .map(|(key, e)| json!({ "key": key, "code": e.code(), "message": e.to_string() }))
                    .collect::<Vec<_>>(),
            }),
            _ => json!({}),
        }
    }
}

/// A delete (or an abort) of what is already gone has done its work.
pub fn done_if_missing<T>(result: Result<T>) -> Result<()> {
    match result {
        Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_the_contract() {
        let e = Error::NotFound { key: "a/b.txt".into() };
        assert_eq!(e.to_string(), "File not found in storage: a/b.txt");
        assert_eq!(e.code(), "FILE_NOT_FOUND");
        let e = Error::InvalidFileType { provided: "x/y".into(), allowed: vec!["a/b".into(), "c/d".into()] };
        assert_eq!(e.to_string(), "Invalid file type: x/y. Allowed types: a/b, c/d");
        let e = Error::InvalidFileType { provided: "x/y".into(), allowed: vec![] };
        assert_eq!(e.to_string(), "Invalid file type: x/y");
    }

    #[test]
    fn io_permission_errors_are_told_apart() {
        let denied = Error::io("open", std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(denied.code(), "PERMISSION_DENIED");
        let other = Error::io("open", std::io::Error::other("boom"));
        assert_eq!(other.code(), "STORAGE_ERROR");
    }
}
