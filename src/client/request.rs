//! The one request path of every HTTP store: an attempt fails once it moves no bytes (and gets
//! no answer) for the stall timeout, failed attempts are retried by the retry policy, and the
//! caller learns whether an attempt before the answer may have been carried out by the server.
//! A store builds (and signs) each attempt's request and reads the answers' errors; nothing
//! here knows a store.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream as SdkByteStream;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use http_body::{Body as HttpBody, Frame, SizeHint};

use aws_smithy_runtime_api::http::Headers;

use crate::client::response::{served, Served};
use crate::client::retry::RetryPolicy;
use crate::core::backend::{ByteRange, GetResult, ObjectMeta};
use crate::core::body::{rechunk, ByteStream};
use crate::core::error::{Error, Result};

/// Error answers are short documents; more than this is not read.
const MAX_ANSWER_BODY: usize = 64 * 1024;
/// Documents that are answers (a listing page) are read whole up to this size.
const MAX_DOCUMENT: usize = 16 << 20;
/// A request body goes out in slices this size, each one a sign of progress.
const BODY_SLICE: usize = 64 * 1024;

/// One service's connection pool, stall timeout and retry policy.
pub struct HttpClient {
    connector: SharedHttpConnector,
    /// Names the service in messages ("S3").
    service: &'static str,
    stall_timeout: Duration,
    retry: RetryPolicy,
}

/// An answer, and whether an attempt before it may have been carried out by the server (it
/// timed out, broke off after sending, or got a 5xx): a conditional write refused now may
/// have been refused because of that attempt, and the caller must find out.
pub struct Answer {
    pub response: HttpResponse,
    pub after_doubt: bool,
}

impl HttpClient {
    pub fn new(connector: SharedHttpConnector, service: &'static str, stall_timeout: Duration) -> HttpClient {
        HttpClient { connector, service, stall_timeout, retry: RetryPolicy::STANDARD }
    }

    /// Sends the request `build` makes from a body (afresh for each attempt: a signature
    /// carries its time), retrying connection failures, stalls, 429 and 5xx answers; any
    /// other answer is returned as it is, for the caller to read.
    pub async fn send(
        &self,
        operation: &str,
        body: &Bytes,
        mut build: impl FnMut(SdkBody) -> Result<HttpRequest>,
    ) -> Result<Answer> {
        let started = Instant::now();
        let mut after_doubt = false;
        let mut attempt = 1;
        loop {
            let progress = Arc::new(Progress::new());
            let request =
                build(SdkBody::from_body_1_x(SlicedBody { data: body.clone(), progress: Arc::clone(&progress) }))?;
            let outcome = within_stall(self.connector.call(request), &progress, self.stall_timeout).await;
            let delay = self.retry.next_delay(attempt, started.elapsed(), fastrand::f64());
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
                    if let Some(refusal) = untrusted_certificate(self.service, &error) {
                        return Err(refusal);
                    }
                    if last || error.is_user() {
                        return Err(unreachable(self.service, operation, error.is_timeout(), root_cause(&error)));
                    }
                    after_doubt |= !never_sent(&error);
                }
                None if last => {
                    let stall = self.stall_timeout.as_secs();
                    return Err(Error::Timeout(format!(
                        "{} moved no bytes for {stall} s during {operation}",
                        self.service
                    )));
                }
                None => after_doubt = true,
            }
            tokio::time::sleep(delay.unwrap_or_default()).await;
            attempt += 1;
        }
    }

    /// A short answer body (an XML or JSON document), read up to `MAX_ANSWER_BODY` bytes.
    pub async fn read_capped(&self, response: HttpResponse) -> Bytes {
        let mut body = SdkByteStream::new(response.into_body());
        let mut read = BytesMut::new();
        while read.len() < MAX_ANSWER_BODY {
            match tokio::time::timeout(self.stall_timeout, body.next()).await {
                Ok(Some(Ok(chunk))) => read.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BODY - read.len())]),
                _ => break,
            }
        }
        read.freeze()
    }

    /// A document answer (a listing page), read whole; one longer than any service sends, or
    /// one that breaks off, is an error rather than a page cut short.
    pub async fn read_document(&self, operation: &str, response: HttpResponse) -> Result<Bytes> {
        let mut body = SdkByteStream::new(response.into_body());
        let mut read = BytesMut::new();
        loop {
            let chunk = match tokio::time::timeout(self.stall_timeout, body.next()).await {
                Ok(None) => return Ok(read.freeze()),
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(e))) => {
                    return Err(Error::Unavailable(format!(
                        "the answer of {} to {operation} broke off: {}",
                        self.service,
                        root_cause(&e)
                    )))
                }
                Err(_) => return Err(Error::Timeout(format!("the answer of {} to {operation} stalled", self.service))),
            };
            if read.len() + chunk.len() > MAX_DOCUMENT {
                return Err(Error::Service {
                    status: 200,
                    message: format!("{} answered {operation} with more than {MAX_DOCUMENT} bytes", self.service),
                });
            }
            read.extend_from_slice(&chunk);
        }
    }

    /// The object a successful GET answer (or a 416 to its `range`) carries: its description
    /// from `describe` (the answer's headers, and the object's size when a span was served),
    /// the span, and the body as a stream. A 416, or a span that starts at the end, serves
    /// nothing; `stat` then describes the object (a 416 carries the error's headers).
    pub async fn object_answer<Stat>(
        &self,
        operation: &str,
        response: HttpResponse,
        range: Option<ByteRange>,
        describe: impl Fn(&Headers, Option<u64>) -> ObjectMeta,
        stat: impl FnOnce() -> Stat,
    ) -> Result<GetResult>
    where
        Stat: std::future::Future<Output = Result<ObjectMeta>>,
    {
        let status = response.status().as_u16();
        let ranged = match served(status, response.headers().get("content-range"), range, self.service, operation)? {
            Served::Whole => None,
            Served::Span(span, size) => Some((span, size)),
            Served::Unsatisfiable(size) => {
                let meta = match size {
                    Some(size) if status != 416 => describe(response.headers(), Some(size)),
                    _ => stat().await?,
                };
                let _ = self.read_capped(response).await;
                let span = range.map_or(Ok((0, 0)), |r| r.resolve(meta.size))?;
                return Ok(GetResult { meta, span, stream: stream::empty().boxed() });
            }
        };
        let meta = describe(response.headers(), ranged.map(|(_, size)| size));
        let span = ranged.map_or((0, meta.size), |(span, _)| span);
        let stream = self.body_stream(response.into_body(), span.1 - span.0);
        Ok(GetResult { meta, span, stream })
    }

    /// A response body (of `length` bytes) as a stream of chunks; a body that moves nothing for
    /// the stall timeout fails.
    pub fn body_stream(&self, body: SdkBody, length: u64) -> ByteStream {
        let (stall, service) = (self.stall_timeout, self.service);
        let chunks = stream::unfold(SdkByteStream::new(body), move |mut body| async move {
            let next = match tokio::time::timeout(stall, body.next()).await {
                Ok(next) => next?.map_err(|e| {
                    Error::Unavailable(format!("the download from {service} broke off: {}", root_cause(&e)))
                }),
                Err(_) => Err(Error::Timeout(format!("the download from {service} stalled for {} s", stall.as_secs()))),
            };
            Some((next, body))
        });
        rechunk(chunks.boxed(), Some(length))
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

/// The transfer settings every HTTP store takes: parts in flight, and how long a transfer may
/// move no bytes (zero would fail every request at once).
pub fn check_transfer_settings(concurrency: usize, stall_timeout: Duration) -> Result<()> {
    if concurrency == 0 {
        return Err(Error::Configuration("queueSize must be at least 1".into()));
    }
    if stall_timeout < Duration::from_secs(1) {
        return Err(Error::Configuration("stallTimeout must be at least 1 second".into()));
    }
    Ok(())
}

/// A request from its parts; a URL or header the HTTP layer cannot carry is an invalid argument.
pub fn build_request<'a>(
    operation: &str,
    method: &str,
    url: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: SdkBody,
) -> Result<HttpRequest> {
    let invalid = |e: &dyn std::fmt::Display| Error::InvalidArgument(format!("{operation}: {e}"));
    let mut request = HttpRequest::new(body);
    request.set_method(method).map_err(|e| invalid(&e))?;
    request.set_uri(url).map_err(|e| invalid(&e))?;
    for (name, value) in headers {
        request.headers_mut().try_insert(name.to_owned(), value.to_owned()).map_err(|e| invalid(&e))?;
    }
    Ok(request)
}

/// What is wrong with the server's certificate, when that is why the connection failed.
/// The refusal of a server whose certificate is not trusted, when that is why `error` failed:
/// trying again changes nothing, the set-up must.
pub fn untrusted_certificate(service: &str, error: &(dyn std::error::Error + 'static)) -> Option<Error> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(rustls::Error::InvalidCertificate(problem)) = e.downcast_ref::<rustls::Error>() {
            return Some(Error::Configuration(format!(
                "{service} presented a certificate this machine does not trust ({problem:?}): add its CA with \
                 caCertificates or NODE_EXTRA_CA_CERTS"
            )));
        }
        // An io::Error's source() skips the error it wraps: step into that instead.
        source = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
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

/// A request that got no answer: the server was unreachable, or slower than the timeouts.
pub fn unreachable(service: &str, operation: &str, timed_out: bool, cause: String) -> Error {
    if timed_out {
        Error::Timeout(format!("{service} did not answer {operation} in time"))
    } else {
        Error::Unavailable(format!("could not reach {service} for {operation}: {cause}"))
    }
}

/// The innermost cause of an error, which is what a person can act on ("connection refused").
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
