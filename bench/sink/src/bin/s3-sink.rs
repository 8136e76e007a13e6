//! An S3-compatible sink for client-bound benchmarks: path-style requests, no signature check,
//! bodies counted and dropped, downloads made of one repeated buffer. Objects are only a size
//! and an ETag in memory, so the server spends next to nothing per request and per byte and the
//! figures measured against it are the client's.
//!
//! Answers PUT (and copy), multipart (create, part, complete, abort), GET with ranges, HEAD,
//! DELETE, DeleteObjects, ListObjectsV2 (prefix, delimiter, continuation), and `POST /_seed?
//! prefix=&count=&size=` to make many objects at once. Prints `ready <port>`.
//! Usage: s3-sink [port]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED, RANGE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// What every download is made of.
const PATTERN_LEN: usize = 1 << 20;
/// Download frames: big enough that per-frame costs vanish.
const FRAME_LEN: u64 = 256 << 10;
const LAST_MODIFIED_VALUE: &str = "Wed, 01 Jan 2025 00:00:00 GMT";
const LAST_MODIFIED_ISO: &str = "2025-01-01T00:00:00.000Z";

#[derive(Clone)]
struct Object {
    size: u64,
    etag: String,
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<String, Object>,
    /// Upload id → the sizes of its parts by number.
    uploads: HashMap<String, BTreeMap<u32, u64>>,
    counter: u64,
}

impl Store {
    fn next_etag(&mut self) -> String {
        self.counter += 1;
        format!("\"{:032x}\"", self.counter)
    }
}

type Shared = Arc<Mutex<Store>>;

/// `remaining` bytes of the pattern, from `offset` in it.
struct Pattern {
    data: Bytes,
    offset: u64,
    remaining: u64,
}

impl Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let start = (self.offset % PATTERN_LEN as u64) as usize;
        let len = self.remaining.min(FRAME_LEN).min((PATTERN_LEN - start) as u64) as usize;
        let frame = self.data.slice(start..start + len);
        self.offset += len as u64;
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

type Reply = Response<http_body_util::Either<Pattern, http_body_util::Full<Bytes>>>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(http_body_util::Either::Right(http_body_util::Full::new(body.into())));
    *response.status_mut() = status;
    response
}

fn xml(body: String) -> Reply {
    let mut response = reply(StatusCode::OK, body);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn error(status: StatusCode, code: &str) -> Reply {
    let mut response = reply(status, format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>"));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn with_etag(mut response: Reply, etag: &str) -> Reply {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(request: &Request<Incoming>) -> HashMap<String, String> {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// Bytes of a body, counted and dropped.
async fn drain(body: Incoming) -> u64 {
    let mut body = body;
    let mut total = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
        }
    }
    total
}

async fn text(body: Incoming) -> String {
    body.collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default()
}

/// The range a Range header asks of `size` bytes: Ok(None) for the whole, Err for unsatisfiable.
fn range(header: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("bytes=")) else {
        return Ok(None);
    };
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) => (start, end.min(size.saturating_sub(1))),
        (Ok(start), Err(_)) if last.is_empty() => (start, size.saturating_sub(1)),
        (Err(_), Ok(suffix)) if first.is_empty() => (size.saturating_sub(suffix), size.saturating_sub(1)),
        _ => return Err(()),
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn list(store: &Store, params: &HashMap<String, String>) -> String {
    let prefix = params.get("prefix").map(String::as_str).unwrap_or("");
    let delimiter = params.get("delimiter").map(String::as_str).filter(|d| !d.is_empty());
    let max_keys = params.get("max-keys").and_then(|m| m.parse().ok()).unwrap_or(1000usize).min(1000);
    let after = params.get("continuation-token").or(params.get("start-after")).cloned().unwrap_or_default();
    let mut contents = String::new();
    let mut prefixes = String::new();
    let mut count = 0;
    let mut last = None;
    let mut truncated = false;
    let start = if after.as_str() > prefix { after.clone() } else { prefix.to_string() };
    for (key, object) in store.objects.range(start..) {
        if !key.starts_with(prefix) {
            break;
        }
        if key.as_str() <= after.as_str() && !after.is_empty() {
            continue;
        }
        // After a common prefix, the continuation token is the prefix itself: skip what it holds.
        if !after.is_empty() && after.ends_with(delimiter.unwrap_or("\u{0}")) && key.starts_with(after.as_str()) {
            continue;
        }
        if count == max_keys {
            truncated = true;
            break;
        }
        let rest = &key[prefix.len()..];
        if let Some(at) = delimiter.and_then(|d| rest.find(d).map(|i| i + d.len())) {
            let common = &key[..prefix.len() + at];
            if last.as_deref() != Some(common) {
                prefixes.push_str(&format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", escape(common)));
                count += 1;
                last = Some(common.to_string());
            }
            continue;
        }
        contents.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{LAST_MODIFIED_ISO}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            escape(key),
            escape(&object.etag),
            object.size
        ));
        count += 1;
        last = Some(key.clone());
    }
    let next = match (truncated, &last) {
        (true, Some(last)) => format!("<NextContinuationToken>{}</NextContinuationToken>", escape(last)),
        _ => String::new(),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>sink</Name><Prefix>{}</Prefix><KeyCount>{count}</KeyCount><MaxKeys>{max_keys}</MaxKeys><IsTruncated>{truncated}</IsTruncated>{next}{contents}{prefixes}</ListBucketResult>",
        escape(prefix)
    )
}

async fn handle(store: Shared, pattern: Bytes, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let params = query(&request);
    let path = percent_decode(request.uri().path());
    let (bucket, key) = path.trim_start_matches('/').split_once('/').unwrap_or((path.trim_start_matches('/'), ""));
    let (bucket, key) = (bucket.to_string(), key.to_string());
    let method = request.method().clone();

    if bucket == "_seed" && method == Method::POST {
        let count: u64 = params.get("count").and_then(|c| c.parse().ok()).unwrap_or(0);
        let size: u64 = params.get("size").and_then(|c| c.parse().ok()).unwrap_or(0);
        let prefix = params.get("prefix").cloned().unwrap_or_default();
        let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..count {
            let etag = store.next_etag();
            store.objects.insert(format!("{prefix}{i:08}"), Object { size, etag });
        }
        return Ok(reply(StatusCode::OK, format!("{count}")));
    }

    if key.is_empty() {
        // Bucket-level calls.
        return Ok(match method {
            Method::GET if params.contains_key("uploads") => xml(
                "<?xml version=\"1.0\"?><ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>".into(),
            ),
            Method::GET if params.contains_key("location") => {
                xml("<?xml version=\"1.0\"?><LocationConstraint>us-east-1</LocationConstraint>".into())
            }
            Method::GET => xml(list(&store.lock().unwrap_or_else(|p| p.into_inner()), &params)),
            Method::POST if params.contains_key("delete") => {
                let body = text(request.into_body()).await;
                let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                let mut deleted = String::new();
                for part in body.split("<Key>").skip(1) {
                    let key = unescape(part.split("</Key>").next().unwrap_or(""));
                    store.objects.remove(&key);
                    deleted.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(&key)));
                }
                xml(format!("<?xml version=\"1.0\"?><DeleteResult>{deleted}</DeleteResult>"))
            }
            Method::HEAD | Method::PUT => reply(StatusCode::OK, ""),
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        });
    }

    Ok(match method {
        Method::PUT if params.contains_key("uploadId") => {
            let upload = params["uploadId"].clone();
            let number: u32 = params.get("partNumber").and_then(|n| n.parse().ok()).unwrap_or(0);
            let decoded = decoded_length(&request);
            let size = drain(request.into_body()).await;
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            let etag = store.next_etag();
            match store.uploads.get_mut(&upload) {
                Some(parts) => {
                    parts.insert(number, decoded.unwrap_or(size));
                    with_etag(reply(StatusCode::OK, ""), &etag)
                }
                None => error(StatusCode::NOT_FOUND, "NoSuchUpload"),
            }
        }
        Method::PUT => {
            let if_none_match = request.headers().get("if-none-match").is_some();
            let copy_source = request.headers().get("x-amz-copy-source").and_then(|h| h.to_str().ok()).map(percent_decode);
            let decoded = decoded_length(&request);
            let size = drain(request.into_body()).await;
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            if if_none_match && store.objects.contains_key(&key) {
                return Ok(error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed"));
            }
            let etag = store.next_etag();
            if let Some(source) = copy_source {
                let source_key = source.trim_start_matches('/').split_once('/').map_or("", |(_, k)| k).to_string();
                let Some(object) = store.objects.get(&source_key).cloned() else {
                    return Ok(error(StatusCode::NOT_FOUND, "NoSuchKey"));
                };
                store.objects.insert(key, Object { size: object.size, etag: etag.clone() });
                return Ok(xml(format!(
                    "<?xml version=\"1.0\"?><CopyObjectResult><ETag>{}</ETag><LastModified>{LAST_MODIFIED_ISO}</LastModified></CopyObjectResult>",
                    escape(&etag)
                )));
            }
            store.objects.insert(key, Object { size: decoded.unwrap_or(size), etag: etag.clone() });
            with_etag(reply(StatusCode::OK, ""), &etag)
        }
        Method::POST if params.contains_key("uploads") => {
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            store.counter += 1;
            let upload = format!("upload-{}", store.counter);
            store.uploads.insert(upload.clone(), BTreeMap::new());
            xml(format!(
                "<?xml version=\"1.0\"?><InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{upload}</UploadId></InitiateMultipartUploadResult>",
                escape(&bucket),
                escape(&key)
            ))
        }
        Method::POST if params.contains_key("uploadId") => {
            drain(request.into_body()).await;
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            let Some(parts) = store.uploads.remove(&params["uploadId"]) else {
                return Ok(error(StatusCode::NOT_FOUND, "NoSuchUpload"));
            };
            let etag = store.next_etag();
            store.objects.insert(key.clone(), Object { size: parts.values().sum(), etag: etag.clone() });
            xml(format!(
                "<?xml version=\"1.0\"?><CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
                escape(&bucket),
                escape(&key),
                escape(&etag)
            ))
        }
        Method::DELETE if params.contains_key("uploadId") => {
            store.lock().unwrap_or_else(|p| p.into_inner()).uploads.remove(&params["uploadId"]);
            reply(StatusCode::NO_CONTENT, "")
        }
        Method::DELETE => {
            store.lock().unwrap_or_else(|p| p.into_inner()).objects.remove(&key);
            reply(StatusCode::NO_CONTENT, "")
        }
        Method::GET | Method::HEAD => {
            let Some(object) = store.lock().unwrap_or_else(|p| p.into_inner()).objects.get(&key).cloned() else {
                return Ok(if method == Method::HEAD {
                    reply(StatusCode::NOT_FOUND, "")
                } else {
                    error(StatusCode::NOT_FOUND, "NoSuchKey")
                });
            };
            let (status, start, len) = match range(request.headers().get(RANGE), object.size) {
                Ok(None) => (StatusCode::OK, 0, object.size),
                Ok(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
                Err(()) => return Ok(error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange")),
            };
            let body = Pattern { data: pattern, offset: start, remaining: if method == Method::HEAD { 0 } else { len } };
            let mut response = Response::new(http_body_util::Either::Left(body));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            headers.insert(LAST_MODIFIED, HeaderValue::from_static(LAST_MODIFIED_VALUE));
            headers.insert("accept-ranges", HeaderValue::from_static("bytes"));
            if status == StatusCode::PARTIAL_CONTENT {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{}", start + len - 1, object.size)) {
                    headers.insert(CONTENT_RANGE, value);
                }
            }
            with_etag(response, &object.etag)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
    })
}

/// The length of an aws-chunked body's content, which its framing makes longer on the wire.
fn decoded_length(request: &Request<Incoming>) -> Option<u64> {
    request.headers().get("x-amz-decoded-content-length").and_then(|h| h.to_str().ok()).and_then(|h| h.parse().ok())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready {}", listener.local_addr()?.port());
    let store: Shared = Arc::default();
    let pattern = Bytes::from((0..PATTERN_LEN).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (store, pattern) = (Arc::clone(&store), pattern.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&store), pattern.clone(), request));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
