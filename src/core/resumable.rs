//! Resumable uploads, in the model of tus: create, append at an offset, complete or abort, on
//! any store. An upload's state is a small JSON object in the store itself, changed only by
//! conditional writes on its ETag, so any process may serve any request of an upload (after a
//! restart, behind a load balancer): of two appends at one offset exactly one commits; the
//! other's bytes are discarded and it gets `OffsetMismatch`. Each append's bytes become one
//! segment object beside the state; completion streams the segments into the object (with the
//! guards of a plain upload) and then removes the segments and the state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt, TryStreamExt};
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::core::backend::{Backend, GetOptions, ListOptions, Metadata, PutOptions, PutResult};
use crate::core::body::{type_allowed, Body, UploadGuard};
use crate::core::error::{Error, Result};
use crate::core::key::{Key, RESUMABLE_PREFIX};
use crate::core::storage::{checked_put_options, Storage, UploadOptions};

/// How long an upload lives after its last change unless told otherwise.
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// A completion begun this long ago that never ended was cut short (a crash): it may be retaken,
/// and segments left with no state are that old before they are swept.
const STALE: Duration = Duration::from_secs(15 * 60);

/// What a new upload will store, and under which rules.
pub struct NewUpload {
    pub key: String,
    /// `None`: deferred, stated later (`declare_upload_length`) or fixed by completing.
    pub length: Option<u64>,
    /// The content type, metadata, `ifNotExists` and guards of a plain upload.
    pub options: UploadOptions,
    /// How long the upload lives after its last change.
    pub ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct UploadStatus {
    pub id: String,
    pub key: String,
    /// The bytes stored so far.
    pub offset: u64,
    pub length: Option<u64>,
    pub expires_at: SystemTime,
    pub content_type: Option<String>,
    pub metadata: Metadata,
    /// The object is stored: the upload is kept (bytes gone) until it expires, so that a client
    /// asking again hears "done" and a completion asked again gets the same answer.
    pub completed: Option<PutResult>,
}

impl UploadStatus {
    /// Every byte is there: what remains is to complete it.
    pub fn is_full(&self) -> bool {
        self.length == Some(self.offset)
    }
}

pub struct Completed {
    pub key: String,
    pub size: u64,
    pub result: PutResult,
}

#[derive(Clone, Copy, Debug)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
    Md5,
}

impl ChecksumAlgorithm {
    pub fn parse(name: &str) -> Result<ChecksumAlgorithm> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Ok(ChecksumAlgorithm::Sha1),
            "sha256" => Ok(ChecksumAlgorithm::Sha256),
            "md5" => Ok(ChecksumAlgorithm::Md5),
            other => Err(Error::InvalidArgument(format!("checksums are sha1, sha256 or md5, not {other:?}"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Md5 => "md5",
        }
    }
}

/// The digest an append's body must have.
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Md5(md5::Md5),
}

impl Hasher {
    fn new(algorithm: ChecksumAlgorithm) -> Hasher {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Digest::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Digest::new()),
            ChecksumAlgorithm::Md5 => Hasher::Md5(md5::Digest::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => sha1::Digest::update(h, data),
            Hasher::Sha256(h) => sha2::Digest::update(h, data),
            Hasher::Md5(h) => md5::Digest::update(h, data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            Hasher::Sha256(h) => sha2::Digest::finalize(h).to_vec(),
            Hasher::Md5(h) => md5::Digest::finalize(h).to_vec(),
        }
    }
}

/// An upload's state object.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    key: String,
    length: Option<u64>,
    offset: u64,
    content_type: Option<String>,
    metadata: Metadata,
    if_not_exists: bool,
    max_bytes: Option<u64>,
    allowed_content_types: Option<Vec<String>>,
    ttl_ms: u64,
    expires_ms: u64,
    segments: Vec<Segment>,
    completing_since_ms: Option<u64>,
    /// The ETag of the object completing stored (`None` inside when the store gave none).
    #[serde(default)]
    completed: Option<Option<String>>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Segment {
    name: String,
    size: u64,
}

impl State {
    fn status(&self, id: &str) -> UploadStatus {
        UploadStatus {
            id: id.to_owned(),
            key: self.key.clone(),
            offset: self.offset,
            length: self.length,
            expires_at: UNIX_EPOCH + Duration::from_millis(self.expires_ms),
            content_type: self.content_type.clone(),
            metadata: self.metadata.clone(),
            completed: self.completed.clone().map(|etag| PutResult { etag }),
        }
    }

    /// The most bytes the upload may hold: its length, or its `maxBytes`.
    fn limit(&self) -> Option<u64> {
        match (self.length, self.max_bytes) {
            (Some(length), _) => Some(length),
            (None, max) => max,
        }
    }

    fn touched(&mut self) {
        self.expires_ms = now_ms().saturating_add(self.ttl_ms);
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// 128 random bits: an id is unguessable, so knowing one is what lets a client resume.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| Error::Internal("the system gave no random bytes".into()))?;
    Ok(hex::encode(buffer))
}

/// An id as this package makes them, or no upload at all: an id never becomes a path as given.
fn checked_id(id: &str) -> Result<&str> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(id)
    } else {
        Err(Error::UploadNotFound { id: id.to_owned() })
    }
}

fn folder(id: &str) -> String {
    format!("{RESUMABLE_PREFIX}{id}/")
}

fn state_key(id: &str) -> Key {
    Key::listed(format!("{RESUMABLE_PREFIX}{id}/state"))
}

fn segment_key(id: &str, name: &str) -> Key {
    Key::listed(format!("{RESUMABLE_PREFIX}{id}/{name}"))
}

/// The segments, one after another, as one body.
fn concatenated(backend: Arc<dyn Backend>, parts: Vec<Key>, length: u64) -> Body {
    let stream = stream::iter(parts)
        .then(move |key| {
            let backend = Arc::clone(&backend);
            async move { backend.download(&key, GetOptions::default()).await.map(|got| got.stream) }
        })
        .try_flatten();
    Body::stream(stream.boxed(), Some(length))
}

impl Storage {
    pub async fn create_upload(&self, new: NewUpload) -> Result<UploadStatus> {
        let key = Key::parse(new.key)?;
        let put = checked_put_options(new.options.put)?;
        if let (Some(length), Some(limit)) = (new.length, new.options.max_bytes) {
            if length > limit {
                return Err(Error::TooLarge { limit });
            }
        }
        if let Some(allowed) = &new.options.allowed_content_types {
            let declared = put.content_type.as_deref().unwrap_or("");
            if !type_allowed(declared, allowed) {
                return Err(Error::InvalidFileType { provided: declared.to_owned(), allowed: allowed.clone() });
            }
        }
        // Refused now rather than after every byte was sent; completing checks again.
        if put.if_not_exists && self.exists(key.as_str()).await? {
            return Err(Error::AlreadyExists { key: key.to_string() });
        }
        let ttl_ms = new.ttl.as_millis() as u64;
        let mut state = State {
            key: key.to_string(),
            length: new.length,
            offset: 0,
            content_type: put.content_type,
            metadata: put.metadata,
            if_not_exists: put.if_not_exists,
            max_bytes: new.options.max_bytes,
            allowed_content_types: new.options.allowed_content_types,
            ttl_ms,
            expires_ms: 0,
            segments: Vec::new(),
            completing_since_ms: None,
            completed: None,
        };
        state.touched();
        let id = random_hex(16)?;
        self.write_state(&id, &state, None).await?;
        Ok(state.status(&id))
    }

    pub async fn upload_status(&self, id: &str) -> Result<UploadStatus> {
        let (state, _) = self.read_state(checked_id(id)?).await?;
        Ok(state.status(id))
    }

    /// Stores `body` at `offset`, which must be the upload's offset now. Nothing of a body
    /// that fails (a guard, a checksum, a lost race) is kept.
    pub async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        body: Body,
        checksum: Option<Checksum>,
    ) -> Result<UploadStatus> {
        let id = checked_id(id)?;
        let (mut state, etag) = self.read_state(id).await?;
        if offset != state.offset || state.completing_since_ms.is_some() || state.completed.is_some() {
            return Err(Error::OffsetMismatch { id: id.to_owned(), offset: state.offset, given: offset });
        }
        let limit = state.limit();
        let guard =
            UploadGuard { max_bytes: limit.map(|limit| limit.saturating_sub(offset)), ..UploadGuard::default() };
        let body = guard.apply(body)?;
        let counted = Arc::new(AtomicU64::new(0));
        let hasher = Arc::new(Mutex::new(checksum.as_ref().map(|c| Hasher::new(c.algorithm))));
        let (count, hash) = (Arc::clone(&counted), Arc::clone(&hasher));
        let stream = body.stream.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if let Some(hasher) = hash.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                    hasher.update(chunk);
                }
            }
        });
        // Where the store joins segments itself, each but the last must be big enough to be a
        // part: a short last segment is rewritten with the new bytes after it.
        let short = match (self.backend.concat_min_part(), state.segments.last()) {
            (Some(min), Some(last)) if last.size < min => state.segments.pop(),
            _ => None,
        };
        let (start, stream) = match &short {
            Some(last) => {
                let before = self.backend.download(&segment_key(id, &last.name), GetOptions::default()).await?;
                (offset - last.size, before.stream.chain(stream).boxed())
            }
            None => (offset, stream.boxed()),
        };
        let name = format!("{start:020}-{}", random_hex(4)?);
        let segment = segment_key(id, &name);
        let stored = self.backend.put(&segment, Body::stream(stream, None), PutOptions::default()).await;
        if let Err(e) = stored {
            return Err(match (e, limit) {
                // The guard counted from this offset; the caller set a limit on the whole upload.
                (Error::TooLarge { .. }, Some(limit)) => Error::TooLarge { limit },
                (e, _) => e,
            });
        }
        let size = counted.load(Ordering::Relaxed);
        let digest = hasher.lock().unwrap_or_else(PoisonError::into_inner).take().map(Hasher::finish);
        if let (Some(checksum), Some(digest)) = (&checksum, digest) {
            if checksum.digest != digest {
                let _ = self.backend.delete(&segment).await;
                return Err(Error::ChecksumMismatch { algorithm: checksum.algorithm.name() });
            }
        }
        if size == 0 {
            self.backend.delete(&segment).await?;
            return Ok(state.status(id));
        }
        state.offset += size;
        let joined = short.as_ref().map_or(0, |last| last.size);
        state.segments.push(Segment { name, size: joined + size });
        state.touched();
        if let Err(e) = self.write_state(id, &state, Some(&etag)).await {
            let _ = self.backend.delete(&segment).await;
            return Err(match e {
                Error::Precondition { .. } => match self.read_state(id).await {
                    Ok((now, _)) => Error::OffsetMismatch { id: id.to_owned(), offset: now.offset, given: offset },
                    Err(e) => e,
                },
                e => e,
            });
        }
        if let Some(last) = short {
            // Rewritten into the new segment; should this delete fail, the sweep removes it.
            let _ = self.backend.delete(&segment_key(id, &last.name)).await;
        }
        Ok(state.status(id))
    }

    /// States the length of an upload created without one.
    pub async fn declare_upload_length(&self, id: &str, length: u64) -> Result<UploadStatus> {
        let id = checked_id(id)?;
        loop {
            let (mut state, etag) = self.read_state(id).await?;
            match state.length {
                Some(known) if known == length => return Ok(state.status(id)),
                Some(known) => {
                    return Err(Error::InvalidArgument(format!("the upload's length is already {known}, not {length}")))
                }
                None => {}
            }
            if length < state.offset {
                return Err(Error::InvalidArgument(format!("the upload already holds {} bytes", state.offset)));
            }
            if let Some(limit) = state.max_bytes.filter(|limit| length > *limit) {
                return Err(Error::TooLarge { limit });
            }
            state.length = Some(length);
            match self.write_state(id, &state, Some(&etag)).await {
                Ok(_) => return Ok(state.status(id)),
                // An append came in between: read it again.
                Err(Error::Precondition { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the object of the upload's bytes; an upload of deferred length ends where it is.
    pub async fn complete_upload(&self, id: &str) -> Result<Completed> {
        let id = checked_id(id)?;
        let (mut state, etag) = self.read_state(id).await?;
        if let Some(etag) = &state.completed {
            let result = PutResult { etag: etag.clone() };
            return Ok(Completed { key: state.key, size: state.offset, result });
        }
        let incomplete = |reason: String| Error::UploadIncomplete { id: id.to_owned(), reason };
        if state.completing_since_ms.is_some_and(|since| now_ms().saturating_sub(since) < STALE.as_millis() as u64) {
            return Err(incomplete("it is being completed by another request".into()));
        }
        let length = state.length.unwrap_or(state.offset);
        if state.offset != length {
            return Err(incomplete(format!("it holds {} of its {length} bytes", state.offset)));
        }
        state.length = Some(length);
        state.completing_since_ms = Some(now_ms());
        let etag = self.write_state(id, &state, Some(&etag)).await.map_err(|e| match e {
            Error::Precondition { .. } => incomplete("another request changed it meanwhile".into()),
            e => e,
        })?;
        let key = Key::listed(state.key.clone());
        let stored = self.store_segments(id, &state, &key, length).await;
        match stored {
            Ok(result) => {
                // The bytes go; the state stays, marked done, until it expires. Should either
                // fail, `delete_expired_uploads` sweeps what is left.
                state.completing_since_ms = None;
                state.completed = Some(result.etag.clone());
                state.segments.clear();
                state.touched();
                if self.write_state(id, &state, Some(&etag)).await.is_ok() {
                    let _ = self.remove_segments(id).await;
                }
                Ok(Completed { key: state.key, size: length, result })
            }
            Err(e) => {
                // The upload stays, to be completed again or aborted.
                state.completing_since_ms = None;
                let _ = self.write_state(id, &state, Some(&etag)).await;
                Err(e)
            }
        }
    }

    /// Makes the object of the segments, under the guards of a plain upload: inside the store
    /// where it can join objects (its first bytes read to sniff their type), else streamed.
    async fn store_segments(&self, id: &str, state: &State, key: &Key, length: u64) -> Result<PutResult> {
        let parts: Vec<(Key, u64)> = state.segments.iter().map(|s| (segment_key(id, &s.name), s.size)).collect();
        let guard = UploadGuard {
            expected_length: Some(length),
            max_bytes: state.max_bytes,
            allowed_content_types: state.allowed_content_types.clone(),
            content_type: state.content_type.clone(),
        };
        let put = PutOptions {
            content_type: state.content_type.clone(),
            metadata: state.metadata.clone(),
            if_not_exists: state.if_not_exists,
            if_match: None,
        };
        let keys = parts.iter().map(|(key, _)| key.clone()).collect();
        let mut body = guard.apply(concatenated(Arc::clone(&self.backend), keys, length))?;
        if self.backend.concat_min_part().is_none() || parts.is_empty() {
            return self.backend.put(key, body, put).await;
        }
        // The guard reads what sniffing needs before its first chunk; the rest is never read.
        body.stream.next().await.transpose()?;
        drop(body);
        self.backend.concat(key, &parts, put).await
    }

    /// Discards an upload and every byte it holds.
    pub async fn abort_upload(&self, id: &str) -> Result<()> {
        let id = checked_id(id)?;
        match self.backend.stat(&state_key(id)).await {
            Err(Error::NotFound { .. }) => Err(Error::UploadNotFound { id: id.to_owned() }),
            Err(e) => Err(e),
            Ok(_) => self.remove_upload(id).await,
        }
    }

    /// Removes uploads left unfinished: with `before`, those last changed before it; without,
    /// those past their own expiry. Returns how many uploads went.
    pub async fn delete_expired_uploads(&self, before: Option<SystemTime>) -> Result<u64> {
        let orphans_before = SystemTime::now() - STALE;
        let mut options = ListOptions { prefix: RESUMABLE_PREFIX.to_owned(), ..ListOptions::default() };
        // Listed in key order, so each upload's objects come together, its state last.
        let mut removed = 0;
        let mut current: Option<(String, SystemTime)> = None;
        let mut ids = Vec::new();
        loop {
            let page = self.backend.list(&options).await?;
            for object in page.objects {
                let Some((id, name)) = object.key[RESUMABLE_PREFIX.len()..].split_once('/') else { continue };
                if current.as_ref().is_none_or(|(seen, _)| seen != id) {
                    if let Some((done, newest)) = current.take() {
                        ids.push((done, newest, false));
                    }
                    current = Some((id.to_owned(), object.last_modified));
                }
                if let Some((_, newest)) = current.as_mut() {
                    *newest = (*newest).max(object.last_modified);
                }
                if name == "state" {
                    if let Some((done, newest)) = current.take() {
                        ids.push((done, newest, true));
                    }
                }
            }
            for (id, newest, has_state) in ids.drain(..) {
                let expired = match (has_state, before) {
                    (false, _) => newest < orphans_before,
                    (true, Some(before)) => newest < before,
                    (true, None) => matches!(self.read_state(&id).await, Err(Error::UploadExpired { .. })),
                };
                if expired {
                    self.remove_upload(&id).await?;
                    removed += u64::from(has_state);
                }
            }
            match page.cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => break,
            }
        }
        if let Some((id, newest)) = current {
            if newest < orphans_before {
                self.remove_upload(&id).await?;
            }
        }
        Ok(removed)
    }

    async fn read_state(&self, id: &str) -> Result<(State, String)> {
        // A read that overlapped a write may come back torn on a store that rewrites files in
        // place (emulators do): a state that does not parse is read again.
        let mut attempts = 3;
        let (state, etag) = loop {
            let got = match self.backend.download(&state_key(id), GetOptions::default()).await {
                Err(Error::NotFound { .. }) => return Err(Error::UploadNotFound { id: id.to_owned() }),
                other => other?,
            };
            let etag = got.meta.etag.clone().ok_or_else(|| Error::Internal("the store gave no ETag".into()))?;
            let data = Body::stream(got.stream, None).collect().await?;
            attempts -= 1;
            match serde_json::from_slice::<State>(&data) {
                Ok(state) => break (state, etag),
                Err(_) if attempts > 0 => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return Err(Error::Internal(format!("the state of upload {id} is unreadable: {e}"))),
            }
        };
        if state.expires_ms < now_ms() && state.completing_since_ms.is_none() {
            return Err(Error::UploadExpired { id: id.to_owned() });
        }
        Ok((state, etag))
    }

    /// Writes the state if it is still the version `etag` names (or, with none, new); returns
    /// the new version's ETag. Another version is `Precondition`.
    async fn write_state(&self, id: &str, state: &State, etag: Option<&str>) -> Result<String> {
        let data = serde_json::to_vec(state).map_err(|e| Error::Internal(format!("state of upload {id}: {e}")))?;
        let options = PutOptions {
            content_type: Some("application/json".into()),
            if_not_exists: etag.is_none(),
            if_match: etag.map(str::to_owned),
            ..PutOptions::default()
        };
        let key = state_key(id);
        match self.backend.put(&key, Body::bytes(data.into()), options).await {
            Ok(PutResult { etag: Some(etag) }) => Ok(etag),
            Ok(PutResult { etag: None }) => Err(Error::Internal("the store gave no ETag".into())),
            Err(Error::AlreadyExists { .. } | Error::NotFound { .. }) => {
                Err(Error::Precondition { key: key.to_string(), reason: "the upload changed".into() })
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the upload's segments, then its state.
    async fn remove_upload(&self, id: &str) -> Result<()> {
        self.remove_segments(id).await?;
        self.backend.delete(&state_key(id)).await
    }

    /// Deletes every object of the upload but its state.
    async fn remove_segments(&self, id: &str) -> Result<()> {
        let mut options = ListOptions { prefix: folder(id), ..ListOptions::default() };
        let mut keys = Vec::new();
        loop {
            let page = self.backend.list(&options).await?;
            keys.extend(page.objects.into_iter().map(|o| Key::listed(o.key)));
            match page.cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => break,
            }
        }
        let state = state_key(id);
        keys.retain(|key| key != &state);
        for result in self.backend.delete_many(&keys).await {
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::backends::local::LocalBackend;
    use crate::backends::memory::MemoryBackend;
    use crate::core::signing::UrlSigner;
    use crate::core::testing::{chunked_body, cut};

    const BASE: &str = "http://127.0.0.1:9/files";

    fn memory() -> Storage {
        let signer = UrlSigner::new(vec![7; 32], BASE).unwrap();
        Storage::new(Arc::new(MemoryBackend::new(signer)))
    }

    async fn local(root: &std::path::Path) -> Storage {
        Storage::new(Arc::new(LocalBackend::open(root.to_owned(), BASE.into(), None, false).await.unwrap()))
    }

    fn new_upload(key: &str, length: Option<u64>) -> NewUpload {
        NewUpload { key: key.into(), length, options: UploadOptions::default(), ttl: DEFAULT_UPLOAD_TTL }
    }

    fn bytes(data: &[u8]) -> Body {
        Body::bytes(Bytes::copy_from_slice(data))
    }

    /// Every object the store holds for uploads, listed past the filter callers get.
    async fn leftovers(storage: &Storage) -> Vec<String> {
        let options = ListOptions { prefix: RESUMABLE_PREFIX.into(), ..ListOptions::default() };
        storage.backend.list(&options).await.unwrap().objects.into_iter().map(|o| o.key).collect()
    }

    /// Sends `data` in the pieces the cut points make, then completes; returns what was stored.
    async fn upload_in_pieces(storage: &Storage, data: &[u8], points: Vec<usize>, deferred: bool) -> Bytes {
        let length = (!deferred).then_some(data.len() as u64);
        let upload = storage.create_upload(new_upload("in/pieces.bin", length)).await.unwrap();
        let mut offset = 0;
        for piece in cut(data, points) {
            let status = storage.append_upload(&upload.id, offset, bytes(&piece), None).await.unwrap();
            offset += piece.len() as u64;
            assert_eq!(status.offset, offset);
        }
        let done = storage.complete_upload(&upload.id).await.unwrap();
        assert_eq!(done.size, data.len() as u64);
        assert_eq!(leftovers(storage).await.len(), 1, "completion leaves only the state, marked done");
        let again = storage.complete_upload(&upload.id).await.unwrap();
        assert_eq!(
            (again.size, again.result.etag),
            (done.size, done.result.etag.clone()),
            "completing again: the same answer"
        );
        assert!(storage.upload_status(&upload.id).await.unwrap().completed.is_some());
        let appended = storage.append_upload(&upload.id, done.size, bytes(b"more"), None).await;
        assert_eq!(appended.err().map(|e| e.code()), Some("UPLOAD_OFFSET_MISMATCH"));
        assert_eq!(storage.delete_expired_uploads(Some(SystemTime::now() + DEFAULT_UPLOAD_TTL)).await.unwrap(), 1);
        assert!(leftovers(storage).await.is_empty(), "expiry leaves nothing behind");
        storage.get("in/pieces.bin", GetOptions::default()).await.unwrap()
    }

    /// A memory store that joins objects itself, as S3 does, with a minimum part of
    /// `JOIN_MIN` bytes; it checks that every part it is given but the last is that big.
    struct Joining(MemoryBackend);

    const JOIN_MIN: u64 = 1000;

    #[async_trait::async_trait]
    impl Backend for Joining {
        async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
            self.0.put(key, body, options).await
        }
        async fn download(&self, key: &Key, options: GetOptions) -> Result<crate::core::backend::GetResult> {
            self.0.download(key, options).await
        }
        async fn stat(&self, key: &Key) -> Result<crate::core::backend::ObjectMeta> {
            self.0.stat(key).await
        }
        async fn delete(&self, key: &Key) -> Result<()> {
            self.0.delete(key).await
        }
        async fn list(&self, options: &ListOptions) -> Result<crate::core::backend::ListPage> {
            self.0.list(options).await
        }
        fn sign_url(&self, key: &Key, options: &crate::core::backend::SignOptions) -> crate::core::backend::Signing {
            self.0.sign_url(key, options)
        }
        fn concat_min_part(&self) -> Option<u64> {
            Some(JOIN_MIN)
        }
        async fn concat(&self, key: &Key, parts: &[(Key, u64)], options: PutOptions) -> Result<PutResult> {
            let mut joined = Vec::new();
            for (i, (part, size)) in parts.iter().enumerate() {
                assert!(i + 1 == parts.len() || *size >= JOIN_MIN, "part {i} of {} is {size} bytes", parts.len());
                let data =
                    Body::stream(self.0.download(part, GetOptions::default()).await?.stream, None).collect().await?;
                assert_eq!(data.len() as u64, *size);
                joined.extend_from_slice(&data);
            }
            self.0.put(key, Body::bytes(joined.into()), options).await
        }
    }

    fn joining() -> Storage {
        Storage::new(Arc::new(Joining(MemoryBackend::new(UrlSigner::new(vec![7; 32], BASE).unwrap()))))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any body, cut into any pieces (empty ones included), with its length stated or
        /// deferred, reads back byte for byte: on memory, on a local folder, and on a store that
        /// joins the pieces itself (short ones rewritten into the next).
        #[test]
        fn any_body_in_any_pieces_reads_back((data, points) in chunked_body(), deferred: bool) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                for storage in [memory(), local(dir.path()).await, joining()] {
                    let stored = upload_in_pieces(&storage, &data, points.clone(), deferred).await;
                    prop_assert_eq!(&stored[..], &data[..]);
                }
                Ok(())
            })?;
        }
    }

    #[tokio::test]
    async fn a_wrong_offset_is_refused_with_the_right_one() {
        let storage = memory();
        let upload = storage.create_upload(new_upload("a", Some(10))).await.unwrap();
        storage.append_upload(&upload.id, 0, bytes(b"abc"), None).await.unwrap();
        for given in [0, 2, 4, 100] {
            match storage.append_upload(&upload.id, given, bytes(b"x"), None).await {
                Err(Error::OffsetMismatch { offset: 3, given: g, .. }) => assert_eq!(g, given),
                other => panic!("{given}: {:?}", other.map(|s| s.offset)),
            }
        }
        assert_eq!(storage.upload_status(&upload.id).await.unwrap().offset, 3);
    }

    #[tokio::test]
    async fn racing_appends_at_one_offset_have_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        for storage in [memory(), local(dir.path()).await] {
            let upload = storage.create_upload(new_upload("race", None)).await.unwrap();
            let appends = (0..8u8).map(|i| storage.append_upload(&upload.id, 0, bytes(&[i; 1000]), None));
            let results = futures::future::join_all(appends).await;
            let winners: Vec<usize> = (0..8).filter(|i| results[*i].is_ok()).collect();
            assert_eq!(
                winners.len(),
                1,
                "{:?}",
                results.iter().map(|r| r.as_ref().err().map(Error::code)).collect::<Vec<_>>()
            );
            for result in &results {
                if let Err(e) = result {
                    assert_eq!(e.code(), "UPLOAD_OFFSET_MISMATCH");
                }
            }
            storage.complete_upload(&upload.id).await.unwrap();
            let stored = storage.get("race", GetOptions::default()).await.unwrap();
            assert_eq!(&stored[..], &[winners[0] as u8; 1000][..], "the winner's bytes, once");
            assert_eq!(leftovers(&storage).await.len(), 1, "the losers' bytes are gone: only the state is left");
        }
    }

    #[tokio::test]
    async fn a_body_past_the_length_or_with_a_wrong_checksum_keeps_nothing() {
        let storage = memory();
        let upload = storage.create_upload(new_upload("guarded", Some(4))).await.unwrap();
        let too_long = storage.append_upload(&upload.id, 0, bytes(b"12345"), None).await;
        assert_eq!(too_long.err().map(|e| e.code()), Some("FILE_TOO_LARGE"));
        let sha1 = |data: &[u8]| {
            let mut hasher = Hasher::new(ChecksumAlgorithm::Sha1);
            hasher.update(data);
            hasher.finish()
        };
        let wrong = Checksum { algorithm: ChecksumAlgorithm::Sha1, digest: sha1(b"nope") };
        let refused = storage.append_upload(&upload.id, 0, bytes(b"12"), Some(wrong)).await;
        assert_eq!(refused.err().map(|e| e.code()), Some("CHECKSUM_MISMATCH"));
        assert_eq!(storage.upload_status(&upload.id).await.unwrap().offset, 0);
        assert_eq!(leftovers(&storage).await.len(), 1, "only the state");
        let right = Checksum { algorithm: ChecksumAlgorithm::Sha1, digest: sha1(b"12") };
        assert_eq!(storage.append_upload(&upload.id, 0, bytes(b"12"), Some(right)).await.unwrap().offset, 2);
        let early = storage.complete_upload(&upload.id).await;
        assert_eq!(early.err().map(|e| e.code()), Some("UPLOAD_INCOMPLETE"));
    }

    #[tokio::test]
    async fn an_upload_lives_in_the_store_not_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let first = local(dir.path()).await;
            let upload = first.create_upload(new_upload("resumed/file", Some(6))).await.unwrap();
            first.append_upload(&upload.id, 0, bytes(b"abc"), None).await.unwrap();
            upload.id
        };
        let second = local(dir.path()).await;
        assert_eq!(second.upload_status(&id).await.unwrap().offset, 3);
        second.append_upload(&id, 3, bytes(b"def"), None).await.unwrap();
        second.complete_upload(&id).await.unwrap();
        assert_eq!(&second.get("resumed/file", GetOptions::default()).await.unwrap()[..], b"abcdef");
        assert!(second.upload_status(&id).await.unwrap().completed.is_some());
    }

    #[tokio::test]
    async fn uploads_are_out_of_sight_and_out_of_reach() {
        let storage = memory();
        let upload = storage.create_upload(new_upload("visible", None)).await.unwrap();
        storage.append_upload(&upload.id, 0, bytes(b"x"), None).await.unwrap();
        let page = storage.list(ListOptions::default()).await.unwrap();
        assert!(page.objects.is_empty() && page.prefixes.is_empty());
        let delimited = storage.list(ListOptions { delimiter: Some("/".into()), ..ListOptions::default() }).await;
        assert!(delimited.unwrap().prefixes.is_empty());
        for key in [format!("{RESUMABLE_PREFIX}{}/state", upload.id), ".resumable-uploads".into()] {
            assert_eq!(storage.delete(&key).await.err().map(|e| e.code()), Some("INVALID_KEY"));
        }
        for id in ["../x", "", "ABCDEF0123456789ABCDEF0123456789", &format!("{}/", upload.id)] {
            assert_eq!(storage.upload_status(id).await.err().map(|e| e.code()), Some("UPLOAD_NOT_FOUND"));
        }
    }

    #[tokio::test]
    async fn abandoned_uploads_are_swept_and_aborts_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for storage in [memory(), local(dir.path()).await] {
            sweep_and_abort(storage).await;
        }
    }

    async fn sweep_and_abort(storage: Storage) {
        let old = storage.create_upload(new_upload("old", None)).await.unwrap();
        storage.append_upload(&old.id, 0, bytes(b"old bytes"), None).await.unwrap();
        let cutoff = SystemTime::now() + Duration::from_millis(5);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let fresh = storage.create_upload(new_upload("fresh", None)).await.unwrap();
        assert_eq!(storage.delete_expired_uploads(Some(cutoff)).await.unwrap(), 1);
        assert_eq!(storage.upload_status(&old.id).await.err().map(|e| e.code()), Some("UPLOAD_NOT_FOUND"));
        let short = NewUpload { ttl: Duration::from_millis(1), ..new_upload("short", None) };
        let short = storage.create_upload(short).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(storage.upload_status(&short.id).await.err().map(|e| e.code()), Some("UPLOAD_EXPIRED"));
        assert_eq!(storage.delete_expired_uploads(None).await.unwrap(), 1);
        storage.abort_upload(&fresh.id).await.unwrap();
        assert!(leftovers(&storage).await.is_empty());
        assert_eq!(storage.abort_upload(&fresh.id).await.err().map(|e| e.code()), Some("UPLOAD_NOT_FOUND"));
    }

    #[tokio::test]
    async fn a_completed_upload_passes_the_guards_of_a_plain_upload() {
        let storage = memory();
        storage.put("taken", bytes(b"first"), UploadOptions::default()).await.unwrap();
        let mut options = UploadOptions::default();
        options.put.if_not_exists = true;
        let refused = storage.create_upload(NewUpload { options: options.clone(), ..new_upload("taken", None) }).await;
        assert_eq!(refused.err().map(|e| e.code()), Some("FILE_ALREADY_EXISTS"));
        let png_only = UploadOptions {
            put: PutOptions { content_type: Some("image/png".into()), ..PutOptions::default() },
            allowed_content_types: Some(vec!["image/png".into()]),
            ..UploadOptions::default()
        };
        let upload = storage.create_upload(NewUpload { options: png_only, ..new_upload("image", None) }).await.unwrap();
        // An executable renamed: declared a PNG, sniffed as ELF, sent in two pieces.
        storage.append_upload(&upload.id, 0, bytes(b"\x7fELF\x02\x01\x01"), None).await.unwrap();
        storage.append_upload(&upload.id, 7, bytes(&[0; 100]), None).await.unwrap();
        let sniffed = storage.complete_upload(&upload.id).await;
        assert_eq!(sniffed.err().map(|e| e.code()), Some("INVALID_FILE_TYPE"));
        assert!(!storage.exists("image").await.unwrap());
        assert!(storage.upload_status(&upload.id).await.is_ok(), "the upload stays, to be aborted");
    }
}
