//! The single-request object calls (GET, HEAD, PUT and DELETE of one object), signed here and
//! sent straight over the SDK's HTTP connector. For small objects the SDK's operation pipeline
//! (interceptors, endpoint rules, config layering) costs more CPU than the request itself.
//! Multipart uploads, listings, copies and batch deletes stay on the SDK client, which shares
//! this connector and so its connection pool, TLS set-up and timeouts.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use futures::stream::{self, StreamExt};

use super::signer::Signer;
use super::{dispatch_error, service_error};
use crate::core::body::{rechunk, ByteStream};
use crate::core::error::{Error, Result};
use crate::core::key::Key;

/// As the SDK's standard retry mode: three attempts, jittered exponential backoff.
const MAX_ATTEMPTS: u32 = 3;
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(20);

pub struct Direct {
    connector: SharedHttpConnector,
    signer: Arc<Signer>,
    /// Sign the body's SHA-256, or send it as UNSIGNED-PAYLOAD.
    sign_payload: bool,
    stall_timeout: Duration,
}

/// One object call: what to send, and the operation's name for errors.
pub struct Call<'a> {
    pub operation: &'static str,
    pub method: &'static str,
    pub key: &'a Key,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl<'a> Call<'a> {
    /// A call with no headers of its own and no body.
    pub fn new(operation: &'static str, method: &'static str, key: &'a Key) -> Call<'a> {
        Call { operation, method, key, headers: Vec::new(), body: Bytes::new() }
    }
}

impl Direct {
    pub fn new(connector: SharedHttpConnector, signer: Arc<Signer>, sign_payload: bool, stall: Duration) -> Direct {
        Direct { connector, signer, sign_payload, stall_timeout: stall }
    }

    /// Sends the call, retrying connection failures, 429 and 5xx answers; any other answer is
    /// returned as it is, for the caller to read.
    pub async fn send(&self, call: &Call<'_>) -> Result<HttpResponse> {
        let url = self.signer.url(call.key);
        let mut attempt = 1;
        loop {
            let outcome = self.connector.call(self.request(call, &url)?).await;
            let transient = match &outcome {
                Ok(response) => matches!(response.status().as_u16(), 429 | 500 | 502 | 503 | 504),
                Err(error) => !error.is_user(),
            };
            if !transient || attempt == MAX_ATTEMPTS {
                return outcome.map_err(|e| connector_error(call.operation, e));
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    /// `send`, then any answer but a success becomes the error it names.
    pub async fn send_ok(&self, call: &Call<'_>) -> Result<HttpResponse> {
        let response = self.send(call).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.failure(call, response).await)
    }

    /// The error an unsuccessful answer stands for, from its status and its XML error code.
    pub async fn failure(&self, call: &Call<'_>, response: HttpResponse) -> Error {
        let status = response.status().as_u16();
        let body = SdkByteStream::new(response.into_body()).collect().await.map(|b| b.into_bytes());
        let code = body.as_deref().ok().and_then(error_code).unwrap_or_default();
        service_error(call.operation, call.key, status, code)
    }

    /// A response body as a stream of chunks; a body that moves nothing for the stall timeout fails.
    pub fn body_stream(&self, body: SdkBody) -> ByteStream {
        let stall = self.stall_timeout;
        let chunks = stream::unfold(SdkByteStream::new(body), move |mut body| async move {
            let next = match tokio::time::timeout(stall, body.next()).await {
                Ok(next) => next?.map_err(|e| {
                    let detail = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                    Error::Unavailable(format!("the download from S3 broke off: {detail}"))
                }),
                Err(_) => Err(Error::Timeout(format!("the download from S3 stalled for {} s", stall.as_secs()))),
            };
            Some((next, body))
        });
        rechunk(chunks.boxed())
    }

    fn request(&self, call: &Call<'_>, url: &str) -> Result<HttpRequest> {
        let invalid = |e: &dyn std::fmt::Display| Error::InvalidArgument(format!("{}: {e}", call.operation));
        let mut headers: Vec<(&str, &str)> = call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let length = call.body.len().to_string();
        if call.method == "PUT" {
            headers.push(("content-length", &length));
        }
        let payload = self.sign_payload.then_some(&call.body[..]);
        let signature = self.signer.sign_headers(call.method, url, &headers, payload, SystemTime::now())?;
        let mut request = HttpRequest::new(SdkBody::from(call.body.clone()));
        request.set_method(call.method).map_err(|e| invalid(&e))?;
        request.set_uri(url).map_err(|e| invalid(&e))?;
        let all = headers.iter().copied().chain(signature.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        for (name, value) in all.chain([("host", self.signer.host())]) {
            request.headers_mut().try_insert(name.to_owned(), value.to_owned()).map_err(|e| invalid(&e))?;
        }
        Ok(request)
    }
}

fn connector_error(operation: &str, error: ConnectorError) -> Error {
    dispatch_error(operation, error.is_timeout(), aws_sdk_s3::error::DisplayErrorContext(&error).to_string())
}

/// A random share of an exponentially growing delay, so clients that failed together do not
/// come back together.
fn backoff(attempt: u32) -> Duration {
    let ceiling = INITIAL_BACKOFF.saturating_mul(1 << (attempt - 1)).min(MAX_BACKOFF);
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
    ceiling.mul_f64((random >> 11) as f64 / (1u64 << 53) as f64)
}

/// `<Code>NoSuchKey</Code>` from an S3 XML error body.
fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_xml_body() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>";
        assert_eq!(error_code(body), Some("NoSuchBucket"));
        assert_eq!(error_code(b""), None);
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        for attempt in 1..=8 {
            let ceiling = INITIAL_BACKOFF.saturating_mul(1 << (attempt - 1)).min(MAX_BACKOFF);
            assert!(backoff(attempt) <= ceiling);
        }
    }
}
