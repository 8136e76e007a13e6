//! What Azure's answers mean, as this package's errors: from the status and the
//! `x-ms-error-code` header (HEAD answers have no body).

use crate::core::error::Error;

pub fn service_error(operation: &str, key: &str, status: u16, code: &str) -> Error {
    match (status, code) {
        (404, "ContainerNotFound") => Error::Configuration(format!("the Azure container does not exist ({operation})")),
        (404, _) => Error::NotFound { key: key.to_owned() },
        (401 | 403, _) => Error::PermissionDenied(format!(
            "Azure refused {operation} ({code}): check the account name, key or SAS token and its permissions"
        )),
        (409 | 412, _) => Error::Precondition { key: key.to_owned(), reason: format!("{operation}: {code}") },
        (416, _) => Error::Service { status, message: format!("Azure answered 416 {code} to {operation}") },
        (429 | 500..=599, _) => Error::Unavailable(format!("Azure answered {status} {code} to {operation}")),
        _ => Error::Service { status, message: format!("Azure answered {status} {code} to {operation}") },
    }
}
