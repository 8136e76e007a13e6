//! What S3's answers and failures mean, as this package's errors. Never echoes credentials,
//! and tells people what they can act on, not the client's internals.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::client::request::{root_cause, unreachable, untrusted_certificate};
use crate::core::error::Error;
use crate::core::key::Key;

/// What an S3 error answer means, from its status and error code.
pub fn service_error(operation: &str, key: &Key, status: u16, code: &str) -> Error {
    if code == "NoSuchBucket" {
        return missing_bucket(operation);
    }
    match status {
        404 => Error::NotFound { key: key.to_string() },
        401 | 403 => Error::PermissionDenied(format!(
            "S3 refused {operation} ({code}): check the access key, secret and bucket policy"
        )),
        409 | 412 => Error::Precondition { key: key.to_string(), reason: format!("{operation}: {code}") },
        429 | 500..=599 => Error::Unavailable(format!("S3 answered {status} {code} to {operation}")),
        _ => Error::Service { status, message: format!("S3 answered {status} {code} to {operation}") },
    }
}

/// The bucket named in the settings does not exist.
pub fn missing_bucket(operation: &str) -> Error {
    Error::Configuration(format!("the S3 bucket does not exist ({operation}): check the bucket name and region"))
}

/// The status an error code stands for where S3 gives only the code (in a DeleteObjects reply,
/// or an error inside a 200 answer).
pub fn code_status(code: &str) -> u16 {
    match code {
        "AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => 403,
        "NoSuchKey" | "NoSuchUpload" | "NoSuchBucket" => 404,
        "PreconditionFailed" => 412,
        "SlowDown" => 503,
        "InternalError" | "ServiceUnavailable" => 500,
        _ => 400,
    }
}

/// Tells the failures of one SDK call apart.
pub fn s3_error<E>(operation: &str, key: &Key, error: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(refusal) = untrusted_certificate("S3", &error) {
        return refusal;
    }
    match &error {
        SdkError::ServiceError(service) => {
            service_error(operation, key, service.raw().status().as_u16(), service.err().code().unwrap_or(""))
        }
        SdkError::TimeoutError(_) => unreachable("S3", operation, true, root_cause(&error)),
        SdkError::DispatchFailure(failure) => unreachable("S3", operation, failure.is_timeout(), root_cause(&error)),
        SdkError::ResponseError(_) => unreachable("S3", operation, false, root_cause(&error)),
        _ => Error::InvalidArgument(format!("{operation}: S3 cannot take a request made of these arguments")),
    }
}
