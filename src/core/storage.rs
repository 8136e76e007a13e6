//! The front every caller goes through: validates keys and arguments, guards uploads, and
//! builds the bulk operations once on top of any `Backend`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::core::backend::{
    Backend, GetOptions, GetResult, ListOptions, ListPage, Metadata, Method, ObjectMeta, PutOptions, PutResult,
    SignOptions, Signing,
};
use crate::core::body::{type_allowed, Body, UploadGuard};
use crate::core::error::{Error, Result};
use crate::core::key::{check_prefix, Key, RESUMABLE_PREFIX};
use crate::core::listing::{decode_cursor, encode_cursor};
use crate::core::signing::MAX_EXPIRY;

/// User metadata, names and values together, as S3 allows it.
const MAX_METADATA_BYTES: usize = 2048;

/// Everything an upload can ask for: where it goes and what it must satisfy.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    pub put: PutOptions,
    pub content_length: Option<u64>,
    pub max_bytes: Option<u64>,
    pub allowed_content_types: Option<Vec<String>>,
    pub quota: Option<Quota>,
}

/// The most bytes the objects under `prefix` may take together, the upload included.
#[derive(Clone, Debug)]
pub struct Quota {
    pub prefix: String,
    pub max_bytes: u64,
}

/// What a prefix holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
}

#[derive(Clone)]
pub struct Storage {
    pub(crate) backend: Arc<dyn Backend>,
}

impl Storage {
    pub fn new(backend: Arc<dyn Backend>) -> Storage {
        Storage { backend }
    }

    pub async fn put(&self, key: &str, body: Body, options: UploadOptions) -> Result<PutResult> {
        let key = Key::parse(key)?;
        let put = checked_put_options(options.put)?;
        let guard = UploadGuard {
            expected_length: options.content_length,
            max_bytes: options.max_bytes,
            allowed_content_types: options.allowed_content_types,
            content_type: put.content_type.clone(),
        };
        let mut body = guard.apply(body)?;
        if let Some(quota) = &options.quota {
            body = self.within_quota(&key, quota, body).await?;
        }
        self.backend.put(&key, body, put).await
    }

    /// Bytes and objects under `prefix` (the whole store with ""), counted from its listing.
    pub async fn usage(&self, prefix: &str) -> Result<Usage> {
        let mut options = ListOptions { prefix: prefix.to_owned(), ..Default::default() };
        let mut usage = Usage::default();
        loop {
            let page = self.list(options.clone()).await?;
            usage.objects += page.objects.len() as u64;
            usage.bytes += page.objects.iter().map(|o| o.size).sum::<u64>();
            match page.cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => return Ok(usage),
            }
        }
    }

    /// The body, failing with `QuotaExceeded` once it would take the prefix past its quota
    /// (the object it replaces not counted). Concurrent uploads can each fit alone and overrun
    /// together: a quota is checked, not reserved.
    async fn within_quota(&self, key: &Key, quota: &Quota, body: Body) -> Result<Body> {
        check_prefix(&quota.prefix)?;
        if !key.as_str().starts_with(&quota.prefix) {
            return Err(Error::InvalidArgument(format!(
                "the key {key} is not under the quota's prefix {:?}",
                quota.prefix
            )));
        }
        let replaced = match self.backend.stat(key).await {
            Ok(meta) => meta.size,
            Err(Error::NotFound { .. }) => 0,
            Err(e) => return Err(e),
        };
        let used = self.usage(&quota.prefix).await?.bytes.saturating_sub(replaced);
        let (prefix, max_bytes) = (quota.prefix.clone(), quota.max_bytes);
        let exceeded = move || Error::QuotaExceeded { prefix: prefix.clone(), quota: max_bytes, used };
        let room = quota.max_bytes.checked_sub(used).ok_or_else(&exceeded)?;
        if body.length.is_some_and(|length| length > room) {
            return Err(exceeded());
        }
        let mut seen = 0u64;
        let stream = body.stream.map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len() as u64;
            if seen > room {
                return Err(exceeded());
            }
            Ok(chunk)
        });
        Ok(Body::stream(stream.boxed(), body.length))
    }

    pub async fn download(&self, key: &str, options: GetOptions) -> Result<GetResult> {
        self.backend.download(&Key::parse(key)?, options).await
    }

    /// The whole object (or range) in one buffer; for small objects.
    pub async fn get(&self, key: &str, options: GetOptions) -> Result<Bytes> {
        let GetResult { mut stream, span, .. } = self.download(key, options).await?;
        let mut first = match stream.next().await.transpose()? {
            Some(chunk) if chunk.len() as u64 == span.1 - span.0 => return Ok(chunk),
            Some(chunk) => BytesMut::from(chunk),
            None => return Ok(Bytes::new()),
        };
        while let Some(chunk) = stream.next().await {
            first.extend_from_slice(&chunk?);
        }
        Ok(first.freeze())
    }

    pub async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        self.backend.stat(&Key::parse(key)?).await
    }

    /// A failing store is an error, never `false`.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.stat(key).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.backend.delete(&Key::parse(key)?).await
    }

    pub async fn list(&self, options: ListOptions) -> Result<ListPage> {
        check_prefix(&options.prefix)?;
        if options.limit == Some(0) {
            return Err(Error::InvalidArgument("limit must be at least 1".into()));
        }
        if options.delimiter.as_deref() == Some("") {
            return Err(Error::InvalidArgument("delimiter must not be empty".into()));
        }
        let mut options = options;
        options.cursor = options.cursor.as_deref().map(decode_cursor).transpose()?;
        let mut page = self.backend.list(&options).await?;
        // Resumable uploads keep their parts in the store, out of every listing.
        if RESUMABLE_PREFIX.starts_with(&options.prefix) {
            page.objects.retain(|o| !o.key.starts_with(RESUMABLE_PREFIX));
            page.prefixes.retain(|p| p != RESUMABLE_PREFIX);
        }
        page.cursor = page.cursor.as_deref().map(encode_cursor);
        Ok(page)
    }

    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (Key::parse(from)?, Key::parse(to)?);
        if from == to {
            return Ok(());
        }
        self.backend.copy(&from, &to).await
    }

    pub async fn move_object(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (Key::parse(from)?, Key::parse(to)?);
        if from == to {
            return self.backend.stat(&from).await.map(|_| ());
        }
        self.backend.move_object(&from, &to).await
    }

    /// Deletes every key, going on past failures; fails with `Partial` if any failed.
    pub async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        let keys = keys.iter().map(Key::parse).collect::<Result<Vec<_>>>()?;
        let outcome = self.backend.delete_many(&keys).await;
        let mut deleted = 0;
        let mut failures = Vec::new();
        for (key, result) in keys.into_iter().zip(outcome) {
            match result {
                Ok(()) => deleted += 1,
                Err(e) => failures.push((key.to_string(), e)),
            }
        }
        finish_bulk(deleted, failures)
    }

    /// Deletes every object under a prefix; returns how many were deleted. The empty prefix
    /// (the whole store) must be asked for with `all`.
    pub async fn delete_prefix(&self, prefix: &str, all: bool) -> Result<u64> {
        self.delete_where(prefix, all, |_| true).await
    }

    /// Deletes the objects under a prefix last modified before `before`; returns the count.
    pub async fn delete_older_than(&self, prefix: &str, before: SystemTime, all: bool) -> Result<u64> {
        self.delete_where(prefix, all, |modified| modified < before).await
    }

    async fn delete_where(&self, prefix: &str, all: bool, select: impl Fn(SystemTime) -> bool) -> Result<u64> {
        if prefix.is_empty() && !all {
            return Err(Error::InvalidArgument(
                "an empty prefix means every object in the store: pass { all: true } to mean that".into(),
            ));
        }
        let mut options = ListOptions { prefix: prefix.to_owned(), ..Default::default() };
        let mut deleted = 0;
        let mut failures = Vec::new();
        loop {
            let page = self.list(options.clone()).await?;
            let keys: Vec<Key> =
                page.objects.into_iter().filter(|o| select(o.last_modified)).map(|o| Key::listed(o.key)).collect();
            for (key, result) in keys.iter().zip(self.backend.delete_many(&keys).await) {
                match result {
                    Ok(()) => deleted += 1,
                    Err(e) => failures.push((key.to_string(), e)),
                }
            }
            match page.cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => break,
            }
        }
        finish_bulk(deleted, failures)
    }

    pub async fn delete_incomplete_uploads(&self, before: SystemTime) -> Result<u64> {
        self.backend.delete_incomplete_uploads(before).await
    }

    /// One set of rules for every store's URLs, checked before the store signs.
    pub fn sign_url(&self, key: &str, options: &SignOptions) -> Signing {
        match Self::check_signing(key, options) {
            Ok(key) => self.backend.sign_url(&key, options),
            Err(e) => Signing::Ready(Err(e)),
        }
    }

    fn check_signing(key: &str, options: &SignOptions) -> Result<Key> {
        let key = Key::parse(key)?;
        if options.expires_in.is_zero() || options.expires_in > MAX_EXPIRY {
            return Err(Error::InvalidArgument(format!(
                "expiresIn must be between 1 and {} seconds (7 days)",
                MAX_EXPIRY.as_secs()
            )));
        }
        let headers = [
            ("contentType", &options.content_type),
            ("responseContentType", &options.response_content_type),
            ("responseContentDisposition", &options.response_content_disposition),
        ];
        for (name, value) in headers {
            if let Some(value) = value {
                check_header_value(name, value)?;
            }
        }
        if options.method != Method::Put && (options.max_bytes.is_some() || options.allowed_content_types.is_some()) {
            return Err(Error::InvalidArgument("maxBytes and allowedContentTypes apply to PUT URLs only".into()));
        }
        if let (Some(allowed), Some(content_type)) = (&options.allowed_content_types, &options.content_type) {
            if !type_allowed(content_type, allowed) {
                return Err(Error::InvalidFileType { provided: content_type.clone(), allowed: allowed.clone() });
            }
        }
        Ok(key)
    }
}

/// Content type and metadata become HTTP headers on every cloud store: one set of rules for
/// all stores. Metadata names are lowercased, as S3 returns them.
pub(crate) fn checked_put_options(mut put: PutOptions) -> Result<PutOptions> {
    if let Some(content_type) = &put.content_type {
        check_header_value("contentType", content_type)?;
    }
    let mut metadata = Metadata::with_capacity(put.metadata.len());
    let mut total = 0;
    for (name, value) in put.metadata {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Error::InvalidArgument(format!(
                "metadata name {name:?} must be ASCII letters, digits or !#$%&'*+-.^_`|~"
            )));
        }
        check_header_value(&format!("metadata {name:?}"), &value)?;
        total += name.len() + value.len();
        if metadata.insert(name.to_ascii_lowercase(), value).is_some() {
            return Err(Error::InvalidArgument(format!("metadata names differ only in case: {name:?}")));
        }
    }
    if total > MAX_METADATA_BYTES {
        return Err(Error::InvalidArgument(format!(
            "metadata is {total} bytes; names and values together may take at most {MAX_METADATA_BYTES}"
        )));
    }
    put.metadata = metadata;
    Ok(put)
}

/// A header value must not carry CR, LF or other control characters (header injection).
fn check_header_value(name: &str, value: &str) -> Result<()> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::InvalidArgument(format!("{name} must not contain control characters such as CR or LF")));
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn finish_bulk(deleted: u64, failures: Vec<(String, Error)>) -> Result<u64> {
    if failures.is_empty() {
        Ok(deleted)
    } else {
        Err(Error::Partial { total: deleted as usize + failures.len(), failures })
    }
}
