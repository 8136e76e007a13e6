//! An in-memory store with the same behaviour as the others, for applications' own tests.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::core::backend::{
    Backend, GetOptions, GetResult, ListEntry, ListOptions, ListPage, Metadata, ObjectMeta, PutOptions, PutResult,
    SignOptions, Signing, DEFAULT_CONTENT_TYPE,
};
use crate::core::body::{chunked, Body};
use crate::core::error::{Error, Result};
use crate::core::key::Key;
use crate::core::listing::paginate;
use crate::core::signing::UrlSigner;

struct StoredObject {
    data: Bytes,
    content_type: String,
    metadata: Metadata,
    etag: String,
    last_modified: SystemTime,
}

impl StoredObject {
    fn meta(&self, key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.to_owned(),
            size: self.data.len() as u64,
            content_type: self.content_type.clone(),
            etag: Some(self.etag.clone()),
            last_modified: self.last_modified,
            metadata: self.metadata.clone(),
        }
    }
}

pub struct MemoryBackend {
    objects: RwLock<BTreeMap<String, StoredObject>>,
    signer: UrlSigner,
}

impl MemoryBackend {
    pub fn new(signer: UrlSigner) -> MemoryBackend {
        MemoryBackend { objects: RwLock::new(BTreeMap::new()), signer }
    }

    fn read<T>(&self, key: &Key, f: impl FnOnce(&StoredObject) -> T) -> Result<T> {
        self.objects().get(key.as_str()).map(f).ok_or_else(|| Error::NotFound { key: key.to_string() })
    }

    // Every change to the map is a single insert or remove, so a lock poisoned by a panic
    // elsewhere still guards a consistent map.
    fn objects(&self) -> RwLockReadGuard<'_, BTreeMap<String, StoredObject>> {
        self.objects.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn objects_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<String, StoredObject>> {
        self.objects.write().unwrap_or_else(PoisonError::into_inner)
    }
}

pub fn new_etag() -> String {
    format!("\"{}\"", uuid::Uuid::new_v4().simple())
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
        // The whole body is gathered before the map changes, so a failed body stores nothing.
        let data = body.collect().await?;
        let etag = new_etag();
        let object = StoredObject {
            data,
            content_type: options.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            metadata: options.metadata,
            etag: etag.clone(),
            last_modified: SystemTime::now(),
        };
        let mut objects = self.objects_mut();
        if options.if_not_exists && objects.contains_key(key.as_str()) {
            return Err(Error::AlreadyExists { key: key.to_string() });
        }
        if let Some(expected) = &options.if_match {
            if objects.get(key.as_str()).is_none_or(|o| &o.etag != expected) {
                return Err(Error::Precondition {
                    key: key.to_string(),
                    reason: "its ETag is not the one given".into(),
                });
            }
        }
        objects.insert(key.to_string(), object);
        Ok(PutResult { etag: Some(etag) })
    }

    async fn download(&self, key: &Key, options: GetOptions) -> Result<GetResult> {
        let (meta, data) = self.read(key, |o| (o.meta(key.as_str()), o.data.clone()))?;
        let span = match options.range {
            Some(range) => range.resolve(meta.size)?,
            None => (0, meta.size),
        };
        let stream = chunked(data.slice(span.0 as usize..span.1 as usize));
        Ok(GetResult { meta, span, stream })
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        self.read(key, |o| o.meta(key.as_str()))
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        self.objects_mut().remove(key.as_str());
        Ok(())
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let objects = self.objects();
        let start = options.cursor.as_deref().map_or(options.prefix.as_str(), |c| c.max(options.prefix.as_str()));
        let entries = objects.range(start.to_owned()..).map(|(key, o)| ListEntry {
            key: key.clone(),
            size: o.data.len() as u64,
            last_modified: o.last_modified,
            etag: Some(o.etag.clone()),
        });
        let entries = entries.take_while(|e| e.key.starts_with(options.prefix.as_str()));
        Ok(paginate(entries, options))
    }

    fn sign_url(&self, key: &Key, options: &SignOptions) -> Signing {
        Signing::Ready(self.signer.sign(key, options, SystemTime::now()))
    }

    fn url_signer(&self) -> Option<&UrlSigner> {
        Some(&self.signer)
    }

    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let copy = self.read(from, |o| StoredObject {
            data: o.data.clone(),
            content_type: o.content_type.clone(),
            metadata: o.metadata.clone(),
            etag: new_etag(),
            last_modified: SystemTime::now(),
        })?;
        self.objects_mut().insert(to.to_string(), copy);
        Ok(())
    }

    async fn move_object(&self, from: &Key, to: &Key) -> Result<()> {
        let mut objects = self.objects_mut();
        let object = objects.remove(from.as_str()).ok_or_else(|| Error::NotFound { key: from.to_string() })?;
        objects.insert(to.to_string(), object);
        Ok(())
    }
}
