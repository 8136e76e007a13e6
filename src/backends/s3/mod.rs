//! The S3-compatible store (AWS, MinIO, R2, B2, Spaces…): object calls, multipart uploads
//! included, go out through `direct`; listings, copies and batch deletes through
//! `aws-sdk-s3`; both over one connection pool.
//!
//! Uploads of up to one part go out as one PutObject; longer or unknown-length bodies as a
//! multipart upload whose parts are buffered one at a time (memory: part size times
//! concurrency) and which is aborted on any failure, so no parts are left behind.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, IdentityCache, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{http_client_fn, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::http::Headers;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use md5::{Digest, Md5};
use tokio::task::JoinSet;

use crate::core::backend::{
    Backend, GetOptions, GetResult, ListEntry, ListOptions, ListPage, ObjectMeta, PutOptions, PutResult, SignOptions,
    SignedUrl, DEFAULT_CONTENT_TYPE, DEFAULT_LIST_LIMIT,
};
use crate::core::body::{Body, ByteStream};
use crate::core::error::{Error, Result};
use crate::core::key::{percent_encode_path, Key};

mod direct;
mod error;
mod signer;
use direct::{xml_text, Answer, Call, Direct};
use error::{code_status, dispatch_error, refused_put, s3_error, service_error};
use signer::{encode, Signer};

/// S3 refuses parts under 5 MiB (except the last) and uploads of more than 10,000 parts.
const MIN_PART_SIZE: usize = 5 << 20;
const MAX_PARTS: u64 = 10_000;
/// A body held as its chunks up to this size before it gets a part buffer.
const HELD_BEFORE_BUFFERING: usize = 1 << 20;
/// DeleteObjects takes at most 1000 keys.
const DELETE_BATCH: usize = 1000;
/// Deletes sent at once when a service has no DeleteObjects.
const DELETE_CONCURRENCY: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may take to start once a request is sent (calls on the SDK client).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per host, and for how long: a burst must not leave a thousand
/// sockets open (S3 itself drops idle connections after about 20 seconds).
const MAX_IDLE_CONNECTIONS: usize = 32;
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);

pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// A custom endpoint (MinIO, R2…); when set, path-style addressing is the default.
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub part_size: usize,
    pub concurrency: usize,
    /// A transfer that moves no bytes for this long fails (StorageTimeoutError).
    pub stall_timeout: Duration,
    /// Sign each body's SHA-256. Default: over plain HTTP only; TLS protects bodies in transit.
    pub sign_payload: Option<bool>,
}

pub struct S3Backend {
    client: Client,
    bucket: String,
    part_size: usize,
    concurrency: usize,
    signer: Arc<Signer>,
    direct: Arc<Direct>,
    /// Uploads whose abort could not reach the server (it was down): aborted again by
    /// `delete_incomplete_uploads`, which on services without ListMultipartUploads is the only
    /// way their parts ever go.
    unaborted: Mutex<Vec<(Key, String)>>,
}

/// Unaborted uploads remembered at most; past that the oldest are forgotten (and left to
/// ListMultipartUploads or a lifecycle rule).
const MAX_UNABORTED: usize = 1000;

/// One upload's part buffers, reused from part to part: its memory stays at `concurrency`
/// parts instead of churning (and fragmenting) the allocator, and is freed when it ends.
struct PartPool {
    size: usize,
    keep: usize,
    free: Mutex<Vec<BytesMut>>,
}

impl PartPool {
    fn take(&self) -> BytesMut {
        let pooled = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop();
        pooled.unwrap_or_else(|| BytesMut::with_capacity(self.size))
    }

    /// Takes a part back once its upload no longer holds it.
    fn give(&self, part: Bytes) {
        if let Ok(mut buffer) = part.try_into_mut() {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            if buffer.capacity() >= self.size && free.len() < self.keep {
                buffer.clear();
                free.push(buffer);
            }
        }
    }
}

impl S3Backend {
    pub fn new(settings: S3Settings) -> Result<S3Backend> {
        if settings.bucket.is_empty() || settings.region.is_empty() {
            return Err(Error::Configuration("S3 needs a bucket and a region".into()));
        }
        if settings.part_size < MIN_PART_SIZE {
            return Err(Error::Configuration(format!("partSize must be at least {MIN_PART_SIZE} bytes")));
        }
        if settings.concurrency == 0 {
            return Err(Error::Configuration("queueSize must be at least 1".into()));
        }
        let connector = SharedHttpConnector::new(
            Connector::builder()
                .connector_settings(
                    HttpConnectorSettings::builder()
                        .connect_timeout(CONNECT_TIMEOUT)
                        .read_timeout(READ_TIMEOUT)
                        .build(),
                )
                .sleep_impl(TokioSleep::new())
                .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
                .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build(),
        );
        let credentials = Credentials::new(
            settings.access_key_id,
            settings.secret_access_key,
            settings.session_token,
            None,
            "raptscallions-storage",
        );
        // Virtual-hosted names with dots break TLS on AWS (the certificate covers one level).
        let path_style =
            settings.force_path_style.unwrap_or(settings.endpoint.is_some() || settings.bucket.contains('.'));
        let signer = Arc::new(Signer::new(
            credentials.clone(),
            &settings.region,
            &settings.bucket,
            settings.endpoint.as_deref(),
            path_style,
        )?);
        let sign_payload = settings.sign_payload.unwrap_or(!signer.is_tls());
        let direct =
            Arc::new(Direct::new(connector.clone(), Arc::clone(&signer), sign_payload, settings.stall_timeout));
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region))
            .credentials_provider(credentials)
            // Static keys: nothing to cache or refresh.
            .identity_cache(IdentityCache::no_cache())
            .http_client(http_client_fn(move |_, _| connector.clone()))
            // Third-party S3 services (R2, B2, older MinIO) reject the SDK's default checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled().grace_period(settings.stall_timeout).build(),
            )
            .force_path_style(path_style);
        if let Some(endpoint) = settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Ok(S3Backend {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket,
            part_size: settings.part_size,
            concurrency: settings.concurrency,
            signer,
            direct,
            unaborted: Mutex::new(Vec::new()),
        })
    }

    async fn put_object(&self, key: &Key, data: Bytes, options: &PutOptions) -> Result<PutResult> {
        let mut headers = object_headers(options);
        if options.if_not_exists {
            headers.push(("if-none-match".to_owned(), "*".to_owned()));
        }
        let call = Call { headers, body: data.clone(), ..Call::new("PutObject", "PUT", key) };
        let answer = self.direct.send(&call).await?;
        if answer.response.status().is_success() {
            return Ok(PutResult { etag: answer.response.headers().get("etag").map(str::to_owned) });
        }
        let expected = || format!("\"{}\"", hex::encode(Md5::digest(&data)));
        self.refused_or_ours(&call, answer, options, expected).await
    }

    /// A conditional write refused after an attempt the server may have carried out may have
    /// been refused because of that attempt: when the object there has the ETag our write
    /// would have, it is ours. Otherwise the refusal stands.
    async fn refused_or_ours(
        &self,
        call: &Call<'_>,
        answer: Answer,
        options: &PutOptions,
        expected_etag: impl FnOnce() -> String,
    ) -> Result<PutResult> {
        let (status, after_doubt) = (answer.response.status().as_u16(), answer.after_doubt);
        let refusal = refused_put(call.key, options, self.direct.failure(call, answer.response).await);
        // S3 answers a completion already done with NoSuchUpload (some services with 403).
        if after_doubt && matches!(status, 403 | 404 | 412) {
            let expected = expected_etag();
            if self.head_object(call.key).await.is_ok_and(|meta| meta.etag.as_deref() == Some(expected.as_str())) {
                return Ok(PutResult { etag: Some(expected) });
            }
        }
        Err(refusal)
    }

    async fn put_multipart(
        &self,
        key: &Key,
        first: Bytes,
        parts: PartReader,
        options: &PutOptions,
    ) -> Result<PutResult> {
        let call = Call {
            query: "?uploads".into(),
            headers: object_headers(options),
            ..Call::new("CreateMultipartUpload", "POST", key)
        };
        let answer = self.direct.send_ok(&call).await?;
        let body = self.direct.read_capped(answer.response).await;
        let upload_id = xml_text(&body, "UploadId").ok_or_else(|| Error::Service {
            status: 200,
            message: "S3 answered CreateMultipartUpload without an UploadId".into(),
        })?;
        let result = self.upload_parts(key, &upload_id, first, parts, options).await;
        // The upload failed already, and a failed abort must not hide why: it is remembered.
        if result.is_err() && self.abort_upload(key, &upload_id).await.is_err() {
            let mut unaborted = self.unaborted.lock().unwrap_or_else(PoisonError::into_inner);
            if unaborted.len() == MAX_UNABORTED {
                unaborted.remove(0);
            }
            unaborted.push((key.clone(), upload_id));
        }
        result
    }

    async fn abort_upload(&self, key: &Key, upload_id: &str) -> Result<()> {
        let query = format!("?uploadId={}", encode(upload_id, true));
        match self.direct.send_ok(&Call { query, ..Call::new("AbortMultipartUpload", "DELETE", key) }).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn upload_parts(
        &self,
        key: &Key,
        upload_id: &str,
        first: Bytes,
        mut parts: PartReader,
        options: &PutOptions,
    ) -> Result<PutResult> {
        let mut uploads = JoinSet::new();
        let mut completed: Vec<(u32, String)> = Vec::new();
        let mut next = Some(first);
        let mut number = 1;
        while let Some(data) = next {
            let (direct, part_key, pool) = (Arc::clone(&self.direct), key.clone(), Arc::clone(&parts.pool));
            let query = format!("?partNumber={number}&uploadId={}", encode(upload_id, true));
            uploads.spawn(async move {
                let call = Call { query, body: data.clone(), ..Call::new("UploadPart", "PUT", &part_key) };
                let sent = direct.send_ok(&call).await;
                drop(call);
                pool.give(data);
                let etag = sent?.response.headers().get("etag").map(str::to_owned).unwrap_or_default();
                Ok((number, etag))
            });
            number += 1;
            // Fill the next part only once a buffer is free: at most `concurrency` in memory.
            while uploads.len() >= self.concurrency {
                completed.push(joined(uploads.join_next().await)?);
            }
            next = parts.next_part().await?;
        }
        while let Some(done) = uploads.join_next().await {
            completed.push(joined(Some(done))?);
        }
        completed.sort_by_key(|(number, _)| *number);
        self.complete(key, upload_id, &completed, options).await
    }

    async fn complete(
        &self,
        key: &Key,
        upload_id: &str,
        parts: &[(u32, String)],
        options: &PutOptions,
    ) -> Result<PutResult> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            let etag = etag.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
            xml.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut headers = vec![("content-type".to_owned(), "application/xml".to_owned())];
        if options.if_not_exists {
            headers.push(("if-none-match".to_owned(), "*".to_owned()));
        }
        let query = format!("?uploadId={}", encode(upload_id, true));
        let call = Call { query, headers, body: Bytes::from(xml), ..Call::new("CompleteMultipartUpload", "POST", key) };
        let answer = self.direct.send(&call).await?;
        if !answer.response.status().is_success() {
            // Retried after a doubtful attempt, a completion already done answers NoSuchUpload.
            return self.refused_or_ours(&call, answer, options, || multipart_etag(parts)).await;
        }
        // S3 may answer 200 and still report an error in the body.
        let body = self.direct.read_capped(answer.response).await;
        if let Some(code) = xml_text(&body, "Code").filter(|_| xml_text(&body, "ETag").is_none()) {
            return Err(refused_put(key, options, service_error(call.operation, key, code_status(&code), &code)));
        }
        Ok(PutResult { etag: xml_text(&body, "ETag") })
    }

    async fn head_object(&self, key: &Key) -> Result<ObjectMeta> {
        let answer = self.direct.send_ok(&Call::new("HeadObject", "HEAD", key)).await?;
        Ok(object_meta(key, answer.response.headers(), None))
    }
}

/// An object's description from the headers of a GET or HEAD answer; `size` when a range was
/// served (the length is then the range's).
fn object_meta(key: &Key, headers: &Headers, size: Option<u64>) -> ObjectMeta {
    let last_modified = headers.get("last-modified").and_then(|v| DateTime::from_str(v, DateTimeFormat::HttpDate).ok());
    ObjectMeta {
        key: key.to_string(),
        size: size.unwrap_or_else(|| headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)),
        content_type: headers.get("content-type").unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
        etag: headers.get("etag").map(str::to_owned),
        last_modified: system_time(last_modified.as_ref()),
        metadata: headers
            .iter()
            .filter_map(|(name, value)| Some((name.strip_prefix("x-amz-meta-")?.to_owned(), value.to_owned())))
            .collect(),
    }
}

/// The headers that give a new object its content type and metadata.
fn object_headers(options: &PutOptions) -> Vec<(String, String)> {
    let content_type = options.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
    let mut headers = vec![("content-type".to_owned(), content_type)];
    headers.extend(options.metadata.iter().map(|(name, value)| (format!("x-amz-meta-{name}"), value.clone())));
    headers
}

/// The ETag S3 gives a multipart object: the MD5 of its parts' MD5s, and the part count.
/// `None`-like (an impossible ETag) when a part's ETag is not an MD5, as on some services.
fn multipart_etag(parts: &[(u32, String)]) -> String {
    let mut digests = Md5::new();
    for (_, etag) in parts {
        match hex::decode(etag.trim_matches('"')) {
            Ok(md5) if md5.len() == 16 => digests.update(&md5),
            _ => return String::new(),
        }
    }
    format!("\"{}-{}\"", hex::encode(digests.finalize()), parts.len())
}

fn system_time(t: Option<&DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn joined<T>(done: Option<std::result::Result<Result<T>, tokio::task::JoinError>>) -> Result<T> {
    match done {
        Some(Ok(part)) => part,
        Some(Err(e)) => Err(Error::Internal(format!("a part upload failed: {e}"))),
        None => Err(Error::Internal("no part upload was running".into())),
    }
}

/// Cuts a body into parts of exactly `size` bytes (the last may be shorter).
struct PartReader {
    stream: ByteStream,
    /// The pool's part size.
    size: usize,
    leftover: Option<Bytes>,
    ended: bool,
    pool: Arc<PartPool>,
}

impl PartReader {
    async fn next_part(&mut self) -> Result<Option<Bytes>> {
        // Chunks are held as they come until there are enough to be worth a part buffer: a
        // small body is sent as it came, never copied into a buffer the size of a part.
        let mut held: Vec<Bytes> = Vec::new();
        let mut part: Option<BytesMut> = None;
        let mut len = 0;
        while len < self.size {
            let mut chunk = match self.leftover.take() {
                Some(chunk) => chunk,
                None if self.ended => break,
                None => match self.stream.next().await.transpose()? {
                    Some(chunk) => chunk,
                    None => {
                        self.ended = true;
                        break;
                    }
                },
            };
            if chunk.is_empty() {
                continue;
            }
            let room = self.size - len;
            if chunk.len() > room {
                self.leftover = Some(chunk.split_off(room));
            }
            len += chunk.len();
            match part.as_mut() {
                Some(part) => part.extend_from_slice(&chunk),
                None => held.push(chunk),
            }
            if part.is_none() && len >= HELD_BEFORE_BUFFERING && len < self.size {
                let mut buffer = self.pool.take();
                held.drain(..).for_each(|chunk| buffer.extend_from_slice(&chunk));
                part = Some(buffer);
            }
        }
        Ok(match (part, held.len()) {
            (Some(part), _) => Some(part.freeze()),
            (None, 0) => None,
            (None, 1) => held.pop(),
            (None, _) => {
                let mut joined = BytesMut::with_capacity(len);
                held.iter().for_each(|chunk| joined.extend_from_slice(chunk));
                Some(joined.freeze())
            }
        })
    }

    /// True once the body has nothing more to give.
    async fn at_end(&mut self) -> Result<bool> {
        if self.leftover.is_some() {
            return Ok(false);
        }
        if self.ended {
            return Ok(true);
        }
        match self.stream.next().await.transpose()? {
            Some(chunk) => {
                self.leftover = Some(chunk);
                Ok(false)
            }
            None => {
                self.ended = true;
                Ok(true)
            }
        }
    }
}

/// `bytes a-b/size` → ((a, b + 1), size).
/// `None` for anything that is not a range inside the object.
fn parse_content_range(header: &str) -> Option<((u64, u64), u64)> {
    let (span, size) = header.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, size) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?, size.parse::<u64>().ok()?);
    (a <= b && b < size).then(|| ((a, b + 1), size))
}

#[async_trait]
impl Backend for S3Backend {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
        // Grow parts when a stated length would need more than S3's 10,000.
        let part_size = match body.length {
            Some(len) => self.part_size.max(len.div_ceil(MAX_PARTS) as usize),
            None => self.part_size,
        };
        let pool = Arc::new(PartPool { size: part_size, keep: self.concurrency, free: Mutex::new(Vec::new()) });
        let mut parts = PartReader { stream: body.stream, size: part_size, leftover: None, ended: false, pool };
        let first = parts.next_part().await?.unwrap_or_default();
        if parts.at_end().await? {
            return self.put_object(key, first, &options).await;
        }
        self.put_multipart(key, first, parts, &options).await
    }

    async fn get(&self, key: &Key, options: GetOptions) -> Result<GetResult> {
        let range = options.range;
        if let Some(r) = range.filter(|r| r.end.is_some_and(|e| e < r.start)) {
            return Err(r.resolve(self.head_object(key).await?.size).unwrap_err());
        }
        let header = range.map(|r| match r.end {
            Some(end) => format!("bytes={}-{end}", r.start),
            None => format!("bytes={}-", r.start),
        });
        let headers = header.map(|h| ("range".to_owned(), h)).into_iter().collect();
        let call = Call { headers, ..Call::new("GetObject", "GET", key) };
        let response = self.direct.send(&call).await?.response;
        if let (416, Some(range)) = (response.status().as_u16(), range) {
            // S3 gives no size with a 416; an empty object still serves `start: 0`.
            let meta = self.head_object(key).await?;
            let span = range.resolve(meta.size)?;
            return Ok(GetResult { meta, span, stream: stream::empty().boxed() });
        }
        if !response.status().is_success() {
            return Err(self.direct.failure(&call, response).await);
        }
        let ranged = match response.headers().get("content-range") {
            Some(header) => Some(parse_content_range(header).ok_or_else(|| Error::Service {
                status: response.status().as_u16(),
                message: format!("S3 answered GetObject with a Content-Range that is no range: {header:?}"),
            })?),
            None => None,
        };
        let meta = object_meta(key, response.headers(), ranged.map(|(_, size)| size));
        let span = ranged.map_or((0, meta.size), |(span, _)| span);
        let stream = self.direct.body_stream(response.into_body(), span.1 - span.0);
        Ok(GetResult { meta, span, stream })
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        self.head_object(key).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        match self.direct.send_ok(&Call::new("DeleteObject", "DELETE", key)).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(DEFAULT_LIST_LIMIT);
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix((!options.prefix.is_empty()).then(|| options.prefix.clone()))
            .set_delimiter(options.delimiter.clone())
            .set_continuation_token(options.cursor.clone())
            .max_keys(limit as i32)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", &Key::listed(options.prefix.clone()), e))?;
        Ok(ListPage {
            objects: output
                .contents()
                .iter()
                .map(|o| ListEntry {
                    key: o.key().unwrap_or_default().to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified: system_time(o.last_modified()),
                    etag: o.e_tag().map(str::to_owned),
                })
                .collect(),
            prefixes: output.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)).collect(),
            cursor: output.next_continuation_token().map(str::to_owned).filter(|_| output.is_truncated() == Some(true)),
        })
    }

    fn sign_url(&self, key: &Key, options: &SignOptions) -> Result<SignedUrl> {
        if options.max_bytes.is_some() || options.allowed_content_types.is_some() {
            return Err(Error::InvalidArgument(
                "S3 cannot bound a presigned PUT's size or type: sign a contentType, and check the object once uploaded"
                    .into(),
            ));
        }
        let now = SystemTime::now();
        Ok(SignedUrl { url: self.signer.presign(key, options, now)?, expires_at: now + options.expires_in })
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let source = format!("/{}/{}", self.bucket, percent_encode_path(from.as_str()));
        let call =
            Call { headers: vec![("x-amz-copy-source".to_owned(), source)], ..Call::new("CopyObject", "PUT", to) };
        let answer = self.direct.send_ok(&call).await.map_err(|e| match e {
            // The missing object is the source.
            Error::NotFound { .. } => Error::NotFound { key: from.to_string() },
            other => other,
        })?;
        // S3 may answer 200 and still report an error in the body.
        let body = self.direct.read_capped(answer.response).await;
        match xml_text(&body, "Code") {
            Some(code) => Err(service_error(call.operation, to, code_status(&code), &code)),
            None => Ok(()),
        }
    }

    /// Aborts the multipart uploads begun before `before` (S3 keeps their parts, and bills
    /// them, until then). A lifecycle rule (AbortIncompleteMultipartUpload) does the same on AWS.
    async fn delete_incomplete_uploads(&self, before: SystemTime) -> Result<u64> {
        let mut aborted = 0;
        let remembered = std::mem::take(&mut *self.unaborted.lock().unwrap_or_else(PoisonError::into_inner));
        for (key, id) in remembered {
            match self.abort_upload(&key, &id).await {
                Ok(()) => aborted += 1,
                Err(_) => self.unaborted.lock().unwrap_or_else(PoisonError::into_inner).push((key, id)),
            }
        }
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let page = match page {
                Ok(page) => page,
                // A service without it (s3s-fs) has only the remembered uploads to abort.
                Err(e) if matches!(e.raw_response().map(|r| r.status().as_u16()), Some(405 | 501)) => {
                    return Ok(aborted)
                }
                Err(e) => return Err(s3_error("ListMultipartUploads", &Key::listed(String::new()), e)),
            };
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else { continue };
                if upload.initiated().is_some_and(|t| SystemTime::try_from(*t).is_ok_and(|t| t < before)) {
                    self.abort_upload(&Key::listed(key.to_owned()), id).await?;
                    aborted += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
        }
    }

    async fn delete_many(&self, keys: &[Key]) -> Vec<Result<()>> {
        let mut results = Vec::with_capacity(keys.len());
        for batch in keys.chunks(DELETE_BATCH) {
            results.extend(self.delete_batch(batch).await);
        }
        results
    }
}

impl S3Backend {
    async fn delete_batch(&self, keys: &[Key]) -> Vec<Result<()>> {
        let objects = keys.iter().map(|k| ObjectIdentifier::builder().key(k.as_str()).build());
        let delete = objects
            .collect::<std::result::Result<Vec<_>, _>>()
            .and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build());
        let Ok(delete) = delete else {
            return keys
                .iter()
                .map(|_| Err(Error::InvalidArgument("DeleteObjects: keys S3 cannot take".into())))
                .collect();
        };
        match self.client.delete_objects().bucket(&self.bucket).delete(delete).send().await {
            Ok(output) => {
                let failed: std::collections::HashMap<&str, &str> =
                    output.errors().iter().filter_map(|e| Some((e.key()?, e.code().unwrap_or("")))).collect();
                keys.iter()
                    .map(|k| match failed.get(k.as_str()) {
                        Some(&"NoSuchKey") | None => Ok(()),
                        Some(code) => Err(service_error("DeleteObjects", k, code_status(code), code)),
                    })
                    .collect()
            }
            // Some S3-compatible services have no DeleteObjects: one call per key, a few at a
            // time, which also gives each key its own error.
            Err(e) if matches!(e.raw_response().map(|r| r.status().as_u16()), Some(405 | 501)) => {
                let mut results = Vec::with_capacity(keys.len());
                for batch in keys.chunks(DELETE_CONCURRENCY) {
                    results.extend(futures::future::join_all(batch.iter().map(|key| self.delete(key))).await);
                }
                results
            }
            // The whole batch failed: every key failed for that reason.
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let code = ProvideErrorMetadata::code(&e).unwrap_or("").to_owned();
                let cause = direct::root_cause(&e);
                let error_for = |key| match status {
                    Some(status) => service_error("DeleteObjects", key, status, &code),
                    None => dispatch_error("DeleteObjects", false, cause.clone()),
                };
                keys.iter().map(|key| Err(error_for(key))).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some(((0, 10), 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
        for nonsense in
            ["bytes 9-2/100", "bytes 0-100/100", "bytes 0-18446744073709551615/5", "bytes 1-2/x", "bits 1-2/3"]
        {
            assert_eq!(parse_content_range(nonsense), None, "{nonsense}");
        }
    }

    fn reader(chunks: Vec<Bytes>, size: usize) -> PartReader {
        let pool = Arc::new(PartPool { size, keep: 2, free: Mutex::new(Vec::new()) });
        let stream = crate::core::testing::strict_stream(chunks.into_iter().map(Ok).collect());
        PartReader { stream, size, leftover: None, ended: false, pool }
    }

    fn settings(bucket: &str, endpoint: Option<&str>) -> S3Settings {
        S3Settings {
            bucket: bucket.into(),
            region: "eu-west-1".into(),
            endpoint: endpoint.map(str::to_owned),
            force_path_style: None,
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: None,
            part_size: MIN_PART_SIZE,
            concurrency: 1,
            stall_timeout: Duration::from_secs(1),
            sign_payload: None,
        }
    }

    #[tokio::test]
    async fn buckets_with_dots_use_path_style_on_aws() {
        let get = SignOptions::new(crate::core::backend::Method::Get, Duration::from_secs(60));
        let key = Key::parse("k").unwrap();
        let url = |settings| S3Backend::new(settings).unwrap().sign_url(&key, &get).unwrap().url;
        assert!(url(settings("my.dotted.bucket", None))
            .starts_with("https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/k?"));
        assert!(url(settings("plain-bucket", None)).starts_with("https://plain-bucket.s3.eu-west-1.amazonaws.com/k?"));
        assert!(
            url(settings("b-bucket", Some("http://127.0.0.1:9000"))).starts_with("http://127.0.0.1:9000/b-bucket/k?")
        );
    }

    #[tokio::test]
    async fn a_small_body_goes_out_as_it_came() {
        let body = Bytes::from(vec![7u8; 4096]);
        let mut parts = reader(vec![body.clone()], 8 << 20);
        let part = parts.next_part().await.unwrap().unwrap();
        assert_eq!(part.as_ptr(), body.as_ptr(), "copied into a part buffer");
        assert!(parts.at_end().await.unwrap());
    }

    proptest::proptest! {
        /// Whatever a server sends as Content-Range, the answer is a range inside the object or none.
        #[test]
        fn any_content_range_is_a_range_inside_the_object_or_none(
            header in proptest::prop_oneof![
                "\\PC{0,40}",
                (proptest::prelude::any::<u64>(), proptest::prelude::any::<u64>(), proptest::prelude::any::<u64>())
                    .prop_map(|(a, b, n)| format!("bytes {a}-{b}/{n}")),
                (0u64..50, 0u64..50, 0u64..50).prop_map(|(a, b, n)| format!("bytes {a}-{b}/{n}")),
            ]
        ) {
            if let Some(((start, end), size)) = parse_content_range(&header) {
                proptest::prop_assert!(start < end && end <= size);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any body, cut anywhere, comes out as whole parts of exactly the part size and one
        /// shorter last part, bytes in order; part sizes on both sides of the point where a
        /// part buffer is taken.
        #[test]
        fn parts_are_cut_to_size(
            size in proptest::prop_oneof![1usize..64, (HELD_BEFORE_BUFFERING - 3)..(HELD_BEFORE_BUFFERING + 70_000)],
            len_in_parts in 0.0f64..3.5,
            cuts in proptest::collection::vec(0.0f64..1.0, 0..40),
        ) {
            let len = (size as f64 * len_in_parts) as usize;
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let points = cuts.iter().map(|c| (c * len as f64) as usize).collect();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let parts = runtime.block_on(async {
                let mut parts = reader(crate::core::testing::cut(&data, points), size);
                let mut out = Vec::new();
                while let Some(part) = parts.next_part().await.unwrap() {
                    out.push(part);
                }
                assert!(parts.at_end().await.unwrap());
                out
            });
            let (last, whole) = parts.split_last().map_or((None, &[][..]), |(l, w)| (Some(l), w));
            proptest::prop_assert!(whole.iter().all(|p| p.len() == size));
            proptest::prop_assert!(last.is_none_or(|p| !p.is_empty() && p.len() <= size));
            proptest::prop_assert_eq!(parts.concat(), data);
        }
    }
}
