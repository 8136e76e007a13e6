//! The S3-compatible store (AWS, MinIO, R2, B2, Spaces…): single-object calls go out through
//! `direct`, everything else through `aws-sdk-s3`, both over one connection pool.
//!
//! Uploads of up to one part go out as one PutObject; longer or unknown-length bodies as a
//! multipart upload whose parts are buffered one at a time (memory: part size times
//! concurrency) and which is aborted on any failure, so no parts are left behind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, IdentityCache, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream as SdkBody, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::{http_client_fn, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::Headers;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use tokio::task::JoinSet;

use crate::core::backend::{
    Backend, GetOptions, GetResult, ListEntry, ListOptions, ListPage, ObjectMeta, PutOptions, PutResult, SignOptions,
    SignedUrl, DEFAULT_CONTENT_TYPE, DEFAULT_LIST_LIMIT,
};
use crate::core::body::{Body, ByteStream};
use crate::core::error::{Error, Result};
use crate::core::key::{percent_encode_path, Key};

mod direct;
mod signer;
use direct::{Call, Direct};
use signer::Signer;

/// S3 refuses parts under 5 MiB (except the last) and uploads of more than 10,000 parts.
const MIN_PART_SIZE: usize = 5 << 20;
const MAX_PARTS: u64 = 10_000;
/// DeleteObjects takes at most 1000 keys.
const DELETE_BATCH: usize = 1000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may take to start once a request is sent.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

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
    sign_payload: bool,
    signer: Arc<Signer>,
    direct: Direct,
}

/// One upload's part buffers, reused from part to part: its memory stays at `concurrency`
/// parts instead of churning (and fragmenting) the allocator, and is freed when it ends.
struct PartPool {
    size: usize,
    keep: usize,
    free: Mutex<Vec<BytesMut>>,
}

impl PartPool {
    fn take(&self) -> BytesMut {
        let pooled = self.free.lock().expect("pool lock poisoned").pop();
        pooled.unwrap_or_else(|| BytesMut::with_capacity(self.size))
    }

    /// Takes a part back once its upload no longer holds it.
    fn give(&self, part: Bytes) {
        if let Ok(mut buffer) = part.try_into_mut() {
            let mut free = self.free.lock().expect("pool lock poisoned");
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
        let path_style = settings.force_path_style.unwrap_or(settings.endpoint.is_some());
        let signer = Arc::new(Signer::new(
            credentials.clone(),
            &settings.region,
            &settings.bucket,
            settings.endpoint.as_deref(),
            path_style,
        )?);
        let sign_payload = settings.sign_payload.unwrap_or(!signer.is_tls());
        let direct = Direct::new(connector.clone(), Arc::clone(&signer), sign_payload, settings.stall_timeout);
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
            sign_payload,
            signer,
            direct,
        })
    }

    async fn put_object(&self, key: &Key, data: Bytes, options: &PutOptions) -> Result<PutResult> {
        let mut headers = vec![("content-type".to_owned(), content_type(options))];
        headers.extend(options.metadata.iter().map(|(name, value)| (format!("x-amz-meta-{name}"), value.clone())));
        if options.if_not_exists {
            headers.push(("if-none-match".to_owned(), "*".to_owned()));
        }
        let call = Call { headers, body: data, ..Call::new("PutObject", "PUT", key) };
        let response = self.direct.send_ok(&call).await.map_err(|e| refused_put(key, options, e))?;
        Ok(PutResult { etag: response.headers().get("etag").map(str::to_owned) })
    }

    async fn put_multipart(
        &self,
        key: &Key,
        first: Bytes,
        parts: PartReader,
        options: &PutOptions,
    ) -> Result<PutResult> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type(options))
            .set_metadata(Some(options.metadata.clone()))
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let result = self.upload_parts(key, &upload_id, first, parts, options).await;
        if result.is_err() {
            // Best effort: the upload failed already, and a failed abort must not hide why.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
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
        let mut completed = Vec::new();
        let mut next = Some(first);
        let mut number = 1;
        while let Some(data) = next {
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(upload_id)
                .part_number(number)
                .content_length(data.len() as i64)
                .body(SdkBody::from(data.clone()))
                .customize();
            let request = if self.sign_payload { request } else { request.disable_payload_signing() };
            let (part_key, pool) = (key.clone(), Arc::clone(&parts.pool));
            uploads.spawn(async move {
                let sent = request.send().await;
                pool.give(data);
                let output = sent.map_err(|e| s3_error("UploadPart", &part_key, e))?;
                Ok(CompletedPart::builder().part_number(number).set_e_tag(output.e_tag().map(str::to_owned)).build())
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
        completed.sort_by_key(|p| p.part_number());
        let output = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .set_if_none_match(options.if_not_exists.then(|| "*".to_owned()))
            .send()
            .await
            .map_err(|e| refused_put(key, options, s3_error("CompleteMultipartUpload", key, e)))?;
        Ok(PutResult { etag: output.e_tag().map(str::to_owned) })
    }

    async fn head_object(&self, key: &Key) -> Result<ObjectMeta> {
        let call = Call::new("HeadObject", "HEAD", key);
        let response = self.direct.send_ok(&call).await?;
        Ok(object_meta(key, response.headers(), None))
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

fn content_type(options: &PutOptions) -> String {
    options.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())
}

fn system_time(t: Option<&DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok()).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn joined(done: Option<std::result::Result<Result<CompletedPart>, tokio::task::JoinError>>) -> Result<CompletedPart> {
    match done {
        Some(Ok(part)) => part,
        Some(Err(e)) => Err(Error::io("upload a part", std::io::Error::other(e))),
        None => Err(Error::io("upload a part", std::io::Error::other("no part upload was running"))),
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
        let mut part = BytesMut::new();
        while part.len() < self.size {
            let chunk = match self.leftover.take() {
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
            let room = self.size - part.len();
            if chunk.len() > room {
                if part.capacity() == 0 {
                    part = self.pool.take();
                }
                part.extend_from_slice(&chunk[..room]);
                self.leftover = Some(chunk.slice(room..));
            } else if part.is_empty() && chunk.len() == room {
                return Ok(Some(chunk));
            } else {
                if part.capacity() == 0 {
                    part = self.pool.take();
                }
                part.extend_from_slice(&chunk);
            }
        }
        Ok((!part.is_empty()).then(|| part.freeze()))
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

/// What an S3 error answer means, from its status and error code; never echoes credentials.
fn service_error(operation: &str, key: &Key, status: u16, code: &str) -> Error {
    match status {
        404 if code != "NoSuchBucket" => Error::NotFound { key: key.to_string() },
        401 | 403 => Error::PermissionDenied(format!(
            "S3 refused {operation} ({code}): check the access key, secret and bucket policy"
        )),
        409 | 412 => Error::Precondition { key: key.to_string(), reason: format!("{operation}: {code}") },
        429 | 500..=599 => Error::Unavailable(format!("S3 answered {status} {code} to {operation}")),
        _ => Error::Service { status, message: format!("S3 answered {status} {code} to {operation}") },
    }
}

/// A request that got no answer: the server was unreachable, or slower than the timeouts.
fn dispatch_error(operation: &str, timed_out: bool, detail: String) -> Error {
    if timed_out {
        Error::Timeout(format!("S3 did not answer {operation} in time"))
    } else {
        Error::Unavailable(format!("could not reach S3 for {operation}: {detail}"))
    }
}

/// Tells the failures of one SDK call apart.
fn s3_error<E>(operation: &str, key: &Key, error: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = aws_sdk_s3::error::DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::ServiceError(service) => {
            service_error(operation, key, service.raw().status().as_u16(), service.err().code().unwrap_or(""))
        }
        SdkError::TimeoutError(_) => dispatch_error(operation, true, detail),
        SdkError::DispatchFailure(failure) => dispatch_error(operation, failure.is_timeout(), detail),
        SdkError::ResponseError(_) => dispatch_error(operation, false, detail),
        _ => Error::Configuration(format!("could not build the S3 request for {operation}: {detail}")),
    }
}

/// A refused conditional put means the key is taken.
fn refused_put(key: &Key, options: &PutOptions, error: Error) -> Error {
    match error {
        Error::Precondition { .. } if options.if_not_exists => Error::AlreadyExists { key: key.to_string() },
        other => other,
    }
}

/// `bytes a-b/size` → ((a, b + 1), size).
fn parse_content_range(header: &str) -> Option<((u64, u64), u64)> {
    let (span, size) = header.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some(((a.parse().ok()?, b.parse::<u64>().ok()? + 1), size.parse().ok()?))
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
        let response = self.direct.send(&call).await?;
        if response.status().as_u16() == 416 {
            // S3 gives no size with a 416; an empty object still serves `start: 0`.
            let meta = self.head_object(key).await?;
            let span = range.expect("416 only answers ranged reads").resolve(meta.size)?;
            return Ok(GetResult { meta, span, stream: stream::empty().boxed() });
        }
        if !response.status().is_success() {
            return Err(self.direct.failure(&call, response).await);
        }
        let ranged = response.headers().get("content-range").and_then(parse_content_range);
        let meta = object_meta(key, response.headers(), ranged.map(|(_, size)| size));
        let span = ranged.map_or((0, meta.size), |(span, _)| span);
        Ok(GetResult { meta, span, stream: self.direct.body_stream(response.into_body()) })
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
            .map_err(|e| s3_error("ListObjectsV2", &Key::parse("list").expect("a valid key"), e))?;
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
        let now = SystemTime::now();
        Ok(SignedUrl { url: self.signer.presign(key, options, now)?, expires_at: now + options.expires_in })
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to.as_str())
            .copy_source(format!("{}/{}", self.bucket, percent_encode_path(from.as_str())))
            .send()
            .await
            .map_err(|e| s3_error("CopyObject", from, e))?;
        Ok(())
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
        let delete = match objects.collect::<std::result::Result<Vec<_>, _>>() {
            Ok(objects) => Delete::builder().set_objects(Some(objects)).quiet(true).build(),
            Err(e) => Err(e),
        };
        let delete = match delete {
            Ok(delete) => delete,
            Err(e) => return keys.iter().map(|_| Err(Error::InvalidArgument(e.to_string()))).collect(),
        };
        match self.client.delete_objects().bucket(&self.bucket).delete(delete).send().await {
            Ok(output) => {
                let failed: std::collections::HashMap<&str, String> = output
                    .errors()
                    .iter()
                    .filter_map(|e| {
                        Some((e.key()?, format!("{}: {}", e.code().unwrap_or(""), e.message().unwrap_or(""))))
                    })
                    .collect();
                keys.iter()
                    .map(|k| match failed.get(k.as_str()) {
                        Some(message) => {
                            Err(Error::Service { status: 200, message: format!("DeleteObjects: {message}") })
                        }
                        None => Ok(()),
                    })
                    .collect()
            }
            // Some S3-compatible services have no DeleteObjects: fall back to one call per key,
            // which also gives each key its own error.
            Err(_) => futures::future::join_all(keys.iter().map(|key| self.delete(key))).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some(((0, 10), 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }

    #[tokio::test]
    async fn parts_are_cut_to_size() {
        let chunks: Vec<Result<Bytes>> = (0..7).map(|i| Ok(Bytes::from(vec![i as u8; 3]))).collect();
        let pool = Arc::new(PartPool { size: 5, keep: 2, free: Mutex::new(Vec::new()) });
        let mut reader =
            PartReader { stream: stream::iter(chunks).boxed(), size: 5, leftover: None, ended: false, pool };
        let mut sizes = Vec::new();
        while let Some(part) = reader.next_part().await.unwrap() {
            sizes.push(part.len());
        }
        assert_eq!(sizes, [5, 5, 5, 5, 1]);
        assert!(reader.at_end().await.unwrap());
    }
}
