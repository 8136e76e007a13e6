//! The front every caller goes through: validates keys and arguments, guards uploads, and
//! builds the bulk operations once on top of any `Backend`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::core::backend::{
    Backend, GetOptions, GetResult, ListOptions, ListPage, ObjectMeta, PutOptions, PutResult, SignOptions, SignedUrl,
};
use crate::core::body::{Body, UploadGuard};
use crate::core::error::{Error, Result};
use crate::core::key::{check_prefix, Key};

/// Everything an upload can ask for: where it goes and what it must satisfy.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    pub put: PutOptions,
    pub content_length: Option<u64>,
    pub max_bytes: Option<u64>,
    pub allowed_content_types: Option<Vec<String>>,
}

#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
}

impl Storage {
    pub fn new(backend: Arc<dyn Backend>) -> Storage {
        Storage { backend }
    }

    pub async fn put(&self, key: &str, body: Body, options: UploadOptions) -> Result<PutResult> {
        let key = Key::parse(key)?;
        let guard = UploadGuard {
            expected_length: options.content_length,
            max_bytes: options.max_bytes,
            allowed_content_types: options.allowed_content_types,
            content_type: options.put.content_type.clone(),
        };
        let body = guard.apply(body)?;
        self.backend.put(&key, body, options.put).await
    }

    pub async fn get(&self, key: &str, options: GetOptions) -> Result<GetResult> {
        self.backend.get(&Key::parse(key)?, options).await
    }

    /// The whole object (or range) in one buffer; for small objects.
    pub async fn read(&self, key: &str, options: GetOptions) -> Result<Bytes> {
        let GetResult { mut stream, span, .. } = self.get(key, options).await?;
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

    pub async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.backend.head(&Key::parse(key)?).await
    }

    /// A failing store is an error, never `false`.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
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
        self.backend.list(&options).await
    }

    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (Key::parse(from)?, Key::parse(to)?);
        if from == to {
            return Ok(());
        }
        self.backend.copy(&from, &to).await
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (Key::parse(from)?, Key::parse(to)?);
        if from == to {
            return self.backend.head(&from).await.map(|_| ());
        }
        self.backend.rename(&from, &to).await
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

    /// Deletes every object under a (non-empty) prefix; returns how many were deleted.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        if prefix.is_empty() {
            return Err(Error::InvalidArgument("deletePrefix needs a non-empty prefix".into()));
        }
        self.delete_where(prefix, |_| true).await
    }

    /// Deletes the objects under a prefix last modified before `before`; returns the count.
    pub async fn delete_older_than(&self, prefix: &str, before: SystemTime) -> Result<u64> {
        self.delete_where(prefix, |modified| modified < before).await
    }

    async fn delete_where(&self, prefix: &str, select: impl Fn(SystemTime) -> bool) -> Result<u64> {
        let mut options = ListOptions { prefix: prefix.to_owned(), ..Default::default() };
        let mut deleted = 0;
        let mut failures = Vec::new();
        loop {
            let page = self.list(options.clone()).await?;
            let keys = page
                .objects
                .iter()
                .filter(|o| select(o.last_modified))
                .map(|o| Key::parse(o.key.as_str()))
                .collect::<Result<Vec<_>>>()?;
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

    pub fn sign_url(&self, key: &str, options: &SignOptions) -> Result<SignedUrl> {
        self.backend.sign_url(&Key::parse(key)?, options)
    }
}

fn finish_bulk(deleted: u64, failures: Vec<(String, Error)>) -> Result<u64> {
    if failures.is_empty() {
        Ok(deleted)
    } else {
        Err(Error::Partial { total: deleted as usize + failures.len(), failures })
    }
}
