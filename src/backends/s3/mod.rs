//! The S3-compatible store (AWS, MinIO, R2, B2, Spaces…): object calls, multipart uploads
//! included, go out through `direct`; listings and batch deletes through `aws-sdk-s3`; both
//! over one connection pool (see `settings`).
//!
//! Uploads of up to one part go out as one PutObject; longer or unknown-length bodies through
//! the core multipart driver (`multipart` is S3's side of it), in bounded memory and aborted on
//! any failure, so no parts are left behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::http::Headers;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use md5::{Digest, Md5};

use crate::client::request::{root_cause, unreachable, Answer};
use crate::client::response::{answers_get, http_date, rfc3339};
use crate::client::{header_value, xml};
use crate::core::backend::{
    Backend, ByteRange, GetOptions, GetResult, ListEntry, ListOptions, ListPage, ObjectMeta, PutOptions, PutResult,
    SignOptions, SignedUrl, Signing, DEFAULT_CONTENT_TYPE, DEFAULT_LIST_LIMIT,
};
use crate::core::body::Body;
use crate::core::error::{done_if_missing, Error, Result};
use crate::core::key::{percent_encode_path, Key};
use crate::core::multipart::{send_parts, Cut, PartLimits, Parts};

mod credentials;
mod direct;
mod error;
mod multipart;
mod settings;
mod signer;
pub use credentials::CredentialsFrom;
use credentials::S3Credentials;
use direct::{Call, Direct};
use error::{code_status, missing_bucket, s3_error, service_error};
use multipart::{abort_upload, S3Parts, Unaborted};
pub use settings::S3Settings;
use signer::{encode, Signer};

/// S3 refuses parts under 5 MiB (except the last) and uploads of more than 10,000 parts.
const MIN_PART_SIZE: usize = 5 << 20;
const MAX_PARTS: u64 = 10_000;
/// The largest part S3 takes (UploadPartCopy ranges included).
const MAX_PART: u64 = 5 << 30;
/// DeleteObjects takes at most 1000 keys.
const DELETE_BATCH: usize = 1000;
/// Deletes sent at once when a service has no DeleteObjects.
const DELETE_CONCURRENCY: usize = 16;

pub struct S3Backend {
    client: Client,
    bucket: String,
    limits: PartLimits,
    signer: Arc<Signer>,
    credentials: Arc<S3Credentials>,
    direct: Arc<Direct>,
    unaborted: Unaborted,
    /// Whether the bucket was seen to exist (see `head_object`).
    bucket_seen: AtomicBool,
}

impl S3Backend {
    /// How a copy names its source object: `/bucket/key`, encoded.
    fn copy_source(&self, key: &Key) -> String {
        format!("/{}/{}", self.bucket, percent_encode_path(key.as_str()))
    }

    async fn put_object(&self, key: &Key, data: Bytes, options: &PutOptions) -> Result<PutResult> {
        let mut headers = object_headers(options);
        headers.extend(write_conditions(options));
        let call = Call { headers, body: data.clone(), ..Call::new("PutObject", "PUT", key) };
        let answer = self.direct.send(&call).await?;
        if answer.response.status().is_success() {
            return Ok(PutResult { etag: answer.response.headers().get("etag").map(str::to_owned) });
        }
        let expected = || format!("\"{}\"", hex::encode(Md5::digest(&data)));
        refused_or_ours(&self.direct, &call, answer, options, expected).await
    }

    /// HEAD answers a missing bucket as it answers a missing key (a bare 404): the first time
    /// a key is missing, the bucket is looked at once, so that a wrong bucket name is a
    /// ConfigurationError and not a store that looks empty.
    async fn head_object(&self, key: &Key) -> Result<ObjectMeta> {
        match head_object(&self.direct, key).await {
            Err(Error::NotFound { .. }) if !self.bucket_seen.load(Ordering::Relaxed) => {
                let bucket = Key::listed(String::new());
                self.direct.send_ok(&Call::new("HeadBucket", "HEAD", &bucket)).await.map_err(|e| match e {
                    Error::NotFound { .. } => missing_bucket("HeadObject"),
                    other => other,
                })?;
                self.bucket_seen.store(true, Ordering::Relaxed);
                Err(Error::NotFound { key: key.to_string() })
            }
            other => other,
        }
    }

    /// The SDK client, once credentials are at hand: a provider that fails is then that
    /// failure, not a request that could not be sent.
    async fn sdk(&self) -> Result<&Client> {
        self.credentials.get().await?;
        Ok(&self.client)
    }
}

async fn head_object(direct: &Direct, key: &Key) -> Result<ObjectMeta> {
    let answer = direct.send_ok(&Call::new("HeadObject", "HEAD", key)).await?;
    Ok(object_meta(key, answer.response.headers(), None))
}

/// A conditional write refused after an attempt the server may have carried out may have been
/// refused because of that attempt: when the object there has the ETag our write would have,
/// it is ours. Otherwise the refusal stands.
async fn refused_or_ours(
    direct: &Direct,
    call: &Call<'_>,
    answer: Answer,
    options: &PutOptions,
    expected_etag: impl FnOnce() -> String,
) -> Result<PutResult> {
    let (status, after_doubt) = (answer.response.status().as_u16(), answer.after_doubt);
    let refusal = options.refusal(call.key, direct.failure(call, answer.response).await);
    // S3 answers a completion already done with NoSuchUpload (some services with 403).
    if after_doubt && matches!(status, 403 | 404 | 412) {
        let expected = expected_etag();
        if head_object(direct, call.key).await.is_ok_and(|meta| meta.etag.as_deref() == Some(expected.as_str())) {
            return Ok(PutResult { etag: Some(expected) });
        }
    }
    Err(refusal)
}

/// An object's description from the headers of a GET or HEAD answer; `size` when a range was
/// served (the length is then the range's).
fn object_meta(key: &Key, headers: &Headers, size: Option<u64>) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: size.unwrap_or_else(|| headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0)),
        content_type: headers.get("content-type").unwrap_or(DEFAULT_CONTENT_TYPE).to_owned(),
        etag: headers.get("etag").map(str::to_owned),
        last_modified: http_date(headers.get("last-modified")),
        metadata: headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.strip_prefix("x-amz-meta-")?.to_owned(), header_value::decode(value)))
            })
            .collect(),
    }
}

/// The headers that make a put conditional: create only, or replace only a given version.
fn write_conditions(options: &PutOptions) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if options.if_not_exists {
        headers.push(("if-none-match".to_owned(), "*".to_owned()));
    }
    if let Some(etag) = &options.if_match {
        headers.push(("if-match".to_owned(), etag.clone()));
    }
    headers
}

fn object_headers(options: &PutOptions) -> Vec<(String, String)> {
    let content_type = options.content_type.clone().unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
    let mut headers = vec![("content-type".to_owned(), content_type)];
    headers.extend(
        options.metadata.iter().map(|(name, value)| (format!("x-amz-meta-{name}"), header_value::encode(value))),
    );
    headers
}

#[async_trait]
impl Backend for S3Backend {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
        match self.limits.cut(body).await? {
            Cut::Whole(part) => self.put_object(key, part.data, &options).await,
            Cut::Parts(first, rest) => {
                let unaborted = Arc::clone(&self.unaborted);
                let parts = S3Parts::create(Arc::clone(&self.direct), key, &options, unaborted).await?;
                send_parts(Arc::new(parts), first, rest, self.limits.concurrency).await
            }
        }
    }

    async fn download(&self, key: &Key, options: GetOptions) -> Result<GetResult> {
        let range = options.range;
        if let Some(r) = range.filter(ByteRange::is_backwards) {
            return Err(r.resolve(self.head_object(key).await?.size).unwrap_err());
        }
        let headers = range.map(|r| ("range".to_owned(), r.header())).into_iter().collect();
        let call = Call { headers, ..Call::new("GetObject", "GET", key) };
        let response = self.direct.send(&call).await?.response;
        if !answers_get(response.status().as_u16(), range) {
            return Err(self.direct.failure(&call, response).await);
        }
        let describe = |headers: &Headers, size| object_meta(key, headers, size);
        self.direct.http().object_answer(call.operation, response, range, describe, || self.head_object(key)).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.head_object(key).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        done_if_missing(self.direct.send_ok(&Call::new("DeleteObject", "DELETE", key)).await)
    }

    /// ListObjectsV2 on the direct path, read with the small XML reader: the SDK's deserializer
    /// took most of a listing's CPU (a profile of 100,000 keys: over 40% in aws-smithy-xml).
    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(DEFAULT_LIST_LIMIT);
        let mut query = format!("?list-type=2&max-keys={limit}");
        for (name, value) in [
            ("prefix", Some(&options.prefix).filter(|p| !p.is_empty())),
            ("delimiter", options.delimiter.as_ref()),
            ("continuation-token", options.cursor.as_ref()),
        ] {
            if let Some(value) = value {
                query.push_str(&format!("&{name}={}", encode(value, true)));
            }
        }
        let bucket = Key::listed(String::new());
        let call = Call { query, ..Call::new("ListObjectsV2", "GET", &bucket) };
        let answer = self.direct.send_ok(&call).await?;
        let body = self.direct.http().read_document(call.operation, answer.response).await?;
        let text = String::from_utf8_lossy(&body);
        let objects = xml::elements(&text, "Contents")
            .filter_map(|object| {
                Some(ListEntry {
                    key: xml::field(object, "Key")?,
                    size: xml::field(object, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                    last_modified: rfc3339(xml::field(object, "LastModified").as_deref()),
                    etag: xml::field(object, "ETag"),
                })
            })
            .collect();
        let prefixes = xml::elements(&text, "CommonPrefixes").filter_map(|p| xml::field(p, "Prefix")).collect();
        let truncated = xml::field(&text, "IsTruncated").as_deref() == Some("true");
        let cursor = xml::field(&text, "NextContinuationToken").filter(|t| truncated && !t.is_empty());
        Ok(ListPage { objects, prefixes, cursor })
    }

    fn sign_url(&self, key: &Key, options: &SignOptions) -> Signing {
        if options.max_bytes.is_some() || options.allowed_content_types.is_some() {
            return Signing::Ready(Err(Error::InvalidArgument(
                "S3 cannot bound a presigned PUT's size or type: sign a contentType, and check the object once uploaded"
                    .into(),
            )));
        }
        let presign = |credentials: &Credentials, signer: &Signer, key: &Key, options: &SignOptions| {
            let now = SystemTime::now();
            let url = signer.presign(credentials, key, options, now)?;
            Ok(SignedUrl::new(url, now + options.expires_in, options))
        };
        // Fresh credentials at hand: signed at once. Otherwise they are fetched first.
        if let Some(credentials) = self.credentials.fresh(SystemTime::now()) {
            return Signing::Ready(presign(&credentials, &self.signer, key, options));
        }
        let (cache, signer, key, options) =
            (Arc::clone(&self.credentials), Arc::clone(&self.signer), key.clone(), options.clone());
        Signing::Pending(Box::pin(async move { presign(&cache.get().await?, &signer, &key, &options) }))
    }

    fn concat_min_part(&self) -> Option<u64> {
        Some(MIN_PART_SIZE as u64)
    }

    /// A multipart upload whose parts are copied, inside S3, from the objects joined.
    async fn concat(&self, key: &Key, parts: &[(Key, u64)], options: PutOptions) -> Result<PutResult> {
        let upload = S3Parts::create(Arc::clone(&self.direct), key, &options, Arc::clone(&self.unaborted)).await?;
        let mut pieces = Vec::new();
        for (source, size) in parts {
            // A part is at most 5 GiB: a larger object is copied in equal ranges.
            let count = size.div_ceil(MAX_PART).max(1);
            let step = size.div_ceil(count);
            let source = self.copy_source(source);
            pieces.extend((0..count).map(|i| (source.clone(), (i * step, ((i + 1) * step).min(*size)))));
        }
        let copies = stream::iter(pieces.into_iter().zip(1u32..))
            .map(|((source, range), number)| {
                let upload = &upload;
                async move { upload.copy_part(number, &source, range).await.map(|etag| (number, etag)) }
            })
            .buffered(self.limits.concurrency)
            .try_collect::<Vec<_>>()
            .await;
        let done = match copies {
            Ok(copied) => upload.complete(copied).await,
            Err(e) => Err(e),
        };
        if done.is_err() {
            upload.abort().await;
        }
        done
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let source = self.copy_source(from);
        let call =
            Call { headers: vec![("x-amz-copy-source".to_owned(), source)], ..Call::new("CopyObject", "PUT", to) };
        let answer = self.direct.send_ok(&call).await.map_err(|e| match e {
            // The missing object is the source.
            Error::NotFound { .. } => Error::NotFound { key: from.to_string() },
            other => other,
        })?;
        // S3 may answer 200 and still report an error in the body.
        let body = self.direct.read_capped(answer.response).await;
        match xml::text(&body, "Code") {
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
            match abort_upload(&self.direct, &key, &id).await {
                Ok(()) => aborted += 1,
                Err(_) => self.unaborted.lock().unwrap_or_else(PoisonError::into_inner).push((key, id)),
            }
        }
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .sdk()
                .await?
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
                    abort_upload(&self.direct, &Key::listed(key.to_owned()), id).await?;
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
        let client = match self.sdk().await {
            Ok(client) => client,
            Err(e) => {
                // Every key failed for want of credentials.
                let reason = match e {
                    Error::PermissionDenied(reason) => reason,
                    other => other.to_string(),
                };
                return keys.iter().map(|_| Err(Error::PermissionDenied(reason.clone()))).collect();
            }
        };
        match client.delete_objects().bucket(&self.bucket).delete(delete).send().await {
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
                let cause = root_cause(&e);
                let error_for = |key| match status {
                    Some(status) => service_error("DeleteObjects", key, status, &code),
                    None => unreachable("S3", "DeleteObjects", false, cause.clone()),
                };
                keys.iter().map(|key| Err(error_for(key))).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(bucket: &str, endpoint: Option<&str>) -> S3Settings {
        S3Settings {
            bucket: bucket.into(),
            region: "eu-west-1".into(),
            endpoint: endpoint.map(str::to_owned),
            force_path_style: None,
            credentials: CredentialsFrom::Keys(Credentials::new("AKID", "secret", None, None, "test")),
            part_size: MIN_PART_SIZE,
            concurrency: 1,
            stall_timeout: Duration::from_secs(1),
            sign_payload: None,
            ca_certificates: None,
        }
    }

    #[tokio::test]
    async fn buckets_with_dots_use_path_style_on_aws() {
        let get = SignOptions::new(crate::core::backend::Method::Get, Duration::from_secs(60));
        let key = Key::parse("k").unwrap();
        let url = |settings| match S3Backend::new(settings).unwrap().sign_url(&key, &get) {
            Signing::Ready(signed) => signed.unwrap().url,
            Signing::Pending(_) => panic!("static keys are at hand: no waiting"),
        };
        assert!(url(settings("my.dotted.bucket", None))
            .starts_with("https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/k?"));
        assert!(url(settings("plain-bucket", None)).starts_with("https://plain-bucket.s3.eu-west-1.amazonaws.com/k?"));
        assert!(
            url(settings("b-bucket", Some("http://127.0.0.1:9000"))).starts_with("http://127.0.0.1:9000/b-bucket/k?")
        );
    }
}
