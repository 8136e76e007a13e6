//! The object calls (GET, HEAD, PUT, DELETE of one object, and the calls of a multipart
//! upload), signed here and sent straight over the SDK's HTTP connector. For small objects the
//! SDK's operation pipeline (interceptors, endpoint rules, config layering) costs more CPU than
//! the request itself. Listings, copies and batch deletes stay on the SDK client, which shares
//! this connector and so its connection pool, TLS set-up and timeouts.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::signer::Signer;
use super::{dispatch_error, service_error};
use crate::client::retry::RetryPolicy;
use crate::core::body::{rechunk, ByteStream};
use crate::core::error::{Error, Result};
use crate::core::key::Key;

/// Error answers are short XML documents; more than this is not read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// A request body goes out in slices this size, each one a sign of progress.
const BODY_SLICE: usize = 64 * 1024;

pub struct Direct {
    connector: SharedHttpConnector,
    signer: Arc<Signer>,
    /// Sign the body's SHA-256, or send it as UNSIGNED-PAYLOAD.
    sign_payload: bool,
    stall_timeout: Duration,
}

/// One call: what to send, and the operation's name for errors.
pub struct Call<'a> {
    pub operation: &'static str,
    pub method: &'static str,
    pub key: &'a Key,
    /// The query string after the key (`?uploads`, `?partNumber=2&uploadId=…`), already escaped.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl<'a> Call<'a> {
    /// A call with no query, no headers of its own and no body.
    pub fn new(operation: &'static str, method: &'static str, key: &'a Key) -> Call<'a> {
        Call { operation, method, key, query: String::new(), headers: Vec::new(), body: Bytes::new() }
    }
}

/// An answer, and whether an attempt before it may have been carried out by the server (it
/// timed out, broke off after sending, or got a 5xx): a conditional write refused now may
/// have been refused because of that attempt, and the caller must find out.
pub struct Answer {
    pub response: HttpResponse,
    pub after_doubt: bool,
}

impl Direct {
    pub fn new(connector: SharedHttpConnector, signer: Arc<Signer>, sign_payload: bool, stall: Duration) -> Direct {
        Direct { connector, signer, sign_payload, stall_timeout: stall }
    }

    /// Sends the call, retrying connection failures, stalls, 429 and 5xx answers; any other
    /// answer is returned as it is, for the caller to read. Each attempt fails once it moves
    /// no bytes (and gets no answer) for the stall timeout.
    pub async fn send(&self, call: &Call<'_>) -> Result<Answer> {
        let url = format!("{}{}", self.signer.url(call.key), call.query);
        let started = Instant::now();
        let mut after_doubt = false;
        let mut attempt = 1;
        loop {
            let progress = Arc::new(Progress::new());
            let request = self.request(call, &url, &progress)?;
            let outcome = within_stall(self.connector.call(request), &progress, self.stall_timeout).await;
            let delay = RetryPolicy::STANDARD.next_delay(attempt, started.elapsed(), fastrand::f64());
            let last = delay.is_none();
            match outcome {
                Some(Ok(response)) => {
                    let status = response.status().as_u16();
                    if last || !matches!(status, 429 | 500 | 502 | 503 | 504) {
                        return Ok(Answer { response, after_doubt });
                    }
                    // 429 and 503 say the request was turned away; the others may follow work done.
                    after_doubt |= !matches!(status, 429 | 503);
                }
                Some(Err(error)) => {
                    if last || error.is_user() {
                        return Err(connector_error(call.operation, error));
                    }
                    after_doubt |= !never_sent(&error);
                }
                None if last => {
                    return Err(Error::Timeout(format!(
                        "S3 moved no bytes for {} s during {}",
                        self.stall_timeout.as_secs(),
                        call.operation
                    )))
                }
                None => after_doubt = true,
            }
            tokio::time::sleep(delay.unwrap_or_default()).await;
            attempt += 1;
        }
    }

    /// `send`, then any answer but a success becomes the error it names.
    pub async fn send_ok(&self, call: &Call<'_>) -> Result<Answer> {
        let answer = self.send(call).await?;
        if answer.response.status().is_success() {
            return Ok(answer);
        }
        Err(self.failure(call, answer.response).await)
    }

    /// The error an unsuccessful answer stands for, from its status and its XML error code.
    pub async fn failure(&self, call: &Call<'_>, response: HttpResponse) -> Error {
        let status = response.status().as_u16();
        let body = self.read_capped(response).await;
        service_error(call.operation, call.key, status, &error_code(&body).unwrap_or_default())
    }

    /// A short answer body (an XML document), read up to `MAX_ERROR_BODY` bytes.
    pub async fn read_capped(&self, response: HttpResponse) -> Bytes {
        let mut body = SdkByteStream::new(response.into_body());
        let mut read = BytesMut::new();
        while read.len() < MAX_ERROR_BODY {
            match tokio::time::timeout(self.stall_timeout, body.next()).await {
                Ok(Some(Ok(chunk))) => read.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - read.len())]),
                _ => break,
            }
        }
        read.freeze()
    }

    /// A response body (of `length` bytes) as a stream of chunks; a body that moves nothing for
    /// the stall timeout fails.
    pub fn body_stream(&self, body: SdkBody, length: u64) -> ByteStream {
        let stall = self.stall_timeout;
        let chunks = stream::unfold(SdkByteStream::new(body), move |mut body| async move {
            let next = match tokio::time::timeout(stall, body.next()).await {
                Ok(next) => {
                    next?.map_err(|e| Error::Unavailable(format!("the download from S3 broke off: {}", root_cause(&e))))
                }
                Err(_) => Err(Error::Timeout(format!("the download from S3 stalled for {} s", stall.as_secs()))),
            };
            Some((next, body))
        });
        rechunk(chunks.boxed(), Some(length))
    }

    fn request(&self, call: &Call<'_>, url: &str, progress: &Arc<Progress>) -> Result<HttpRequest> {
        let invalid = |e: &dyn std::fmt::Display| Error::InvalidArgument(format!("{}: {e}", call.operation));
        let mut headers: Vec<(&str, &str)> = call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let length = call.body.len().to_string();
        if matches!(call.method, "PUT" | "POST") {
            headers.push(("content-length", &length));
        }
        let payload = self.sign_payload.then_some(&call.body[..]);
        let signature = self.signer.sign_headers(call.method, url, &headers, payload, SystemTime::now())?;
        let body = SlicedBody { data: call.body.clone(), progress: Arc::clone(progress) };
        let mut request = HttpRequest::new(SdkBody::from_body_1_x(body));
        request.set_method(call.method).map_err(|e| invalid(&e))?;
        request.set_uri(url).map_err(|e| invalid(&e))?;
        let all = headers.iter().copied().chain(signature.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        for (name, value) in all.chain([("host", self.signer.host())]) {
            request.headers_mut().try_insert(name.to_owned(), value.to_owned()).map_err(|e| invalid(&e))?;
        }
        Ok(request)
    }
}

/// When bytes last moved for one request: the body being taken, or the answer arriving.
struct Progress {
    start: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn mark(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// `work`, or `None` once it has made no progress for `stall`.
async fn within_stall<T>(
    work: impl std::future::Future<Output = T>,
    progress: &Progress,
    stall: Duration,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        let left = stall.saturating_sub(progress.idle());
        if left.is_zero() {
            return None;
        }
        tokio::select! {
            done = &mut work => return Some(done),
            _ = tokio::time::sleep(left) => {}
        }
    }
}

/// A request body handed to the connection a slice at a time: the connection takes the next
/// slice only as the socket drains, so each one taken is progress, and a server that stops
/// reading shows up as a stall.
struct SlicedBody {
    data: Bytes,
    progress: Arc<Progress>,
}

impl HttpBody for SlicedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        this.progress.mark();
        let slice = this.data.split_to(this.data.len().min(BODY_SLICE));
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

/// Whether a failed attempt certainly never reached the server (the connection was refused).
fn never_sent(error: &ConnectorError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(io.kind(), ConnectionRefused | AddrNotAvailable | NetworkUnreachable | HostUnreachable);
        }
        source = e.source();
    }
    false
}

/// The innermost cause of an error, which is what a person can act on ("connection refused").
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn connector_error(operation: &str, error: ConnectorError) -> Error {
    dispatch_error(operation, error.is_timeout(), root_cause(&error))
}

/// The text of the first `<tag>…</tag>` in an S3 XML document, unescaped.
pub fn xml_text(body: &[u8], tag: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{tag}>"))?;
    Some(unescape(&text[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&apos;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// `<Code>NoSuchKey</Code>` from an S3 XML error body.
pub fn error_code(body: &[u8]) -> Option<String> {
    xml_text(body, "Code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_xml_body() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>";
        assert_eq!(error_code(body).as_deref(), Some("NoSuchBucket"));
        assert_eq!(error_code(b""), None);
        assert_eq!(error_code(b"<Code>unclosed"), None);
        assert_eq!(error_code(&[0xff, 0xfe]), None);
        let etag = b"<CompleteMultipartUploadResult><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>";
        assert_eq!(xml_text(etag, "ETag").as_deref(), Some("\"3858f62230ac3c915f300c664312c11f-9\""));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_moves_nothing_stalls() {
        let progress = Progress::new();
        let stall = Duration::from_secs(5);
        assert_eq!(within_stall(async { 7 }, &progress, stall).await, Some(7));
        let never = futures::future::pending::<()>();
        assert_eq!(within_stall(never, &Progress::new(), stall).await, None);
    }

    #[tokio::test]
    async fn progress_keeps_a_slow_request_alive() {
        let progress = Arc::new(Progress::new());
        let stall = Duration::from_millis(200);
        let ticking = {
            let progress = Arc::clone(&progress);
            async move {
                for _ in 0..6 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    progress.mark();
                }
            }
        };
        assert_eq!(within_stall(ticking, &progress, stall).await, Some(()), "600 ms of steady progress");
    }

    proptest::proptest! {
        /// Any bytes as an error body: a code or none, never a panic.
        #[test]
        fn any_answer_body_reads_safely(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), tag in "[A-Za-z]{1,8}") {
            let _ = error_code(&body);
            let wrapped = [b"<Code>".as_slice(), &body, b"</Code>"].concat();
            let _ = xml_text(&wrapped, &tag);
            if let Ok(text) = std::str::from_utf8(&body) {
                if !text.contains("</Code>") {
                    proptest::prop_assert_eq!(error_code(&wrapped), Some(unescape(text)));
                }
            }
        }
    }
}
