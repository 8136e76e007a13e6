//! The one trait every store implements, and the small option and result types around it.
//! Operations have the names the JS API gives them (`download`, `stat`, `move`…), here, in
//! `Storage` and in the binding alike.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::future::{self, BoxFuture};

use crate::core::body::{Body, ByteStream};
use crate::core::error::{Error, Result};
use crate::core::key::Key;
use crate::core::signing::UrlSigner;

pub type Metadata = HashMap<String, String>;

pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub metadata: Metadata,
    /// Refuse to overwrite: an existing object makes the put fail with `AlreadyExists`.
    pub if_not_exists: bool,
    /// Overwrite only the version with this ETag (compare-and-swap); another version, or none,
    /// makes the put fail with `Precondition`.
    pub if_match: Option<String>,
}

impl PutOptions {
    /// What a store's refusal of a conditional put means: the key is taken (create only), or
    /// holds another version than the one given (some stores answer a missing one with 404).
    pub fn refusal(&self, key: &Key, error: Error) -> Error {
        match error {
            Error::Precondition { .. } if self.if_not_exists => Error::AlreadyExists { key: key.to_string() },
            Error::NotFound { .. } if self.if_match.is_some() => {
                Error::Precondition { key: key.to_string(), reason: "there is no object to replace".into() }
            }
            other => other,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PutResult {
    pub etag: Option<String>,
}

/// An inclusive byte range, as in HTTP; `end: None` reads to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl ByteRange {
    /// As an HTTP Range header's value.
    pub fn header(&self) -> String {
        match self.end {
            Some(end) => format!("bytes={}-{end}", self.start),
            None => format!("bytes={}-", self.start),
        }
    }

    /// A range that ends before it starts; it can be refused only once the size is known.
    pub fn is_backwards(&self) -> bool {
        self.end.is_some_and(|end| end < self.start)
    }

    /// The `[start, end)` span this range covers in an object of `size` bytes.
    pub fn resolve(&self, size: u64) -> Result<(u64, u64)> {
        let end = self.end.map_or(size, |e| e.saturating_add(1).min(size));
        if self.end.is_some_and(|e| e < self.start) || self.start >= size && size > 0 || self.start > size {
            return Err(Error::InvalidRange { start: self.start, end: self.end, size });
        }
        Ok((self.start, end.max(self.start)))
    }
}

#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    pub range: Option<ByteRange>,
}

#[derive(Clone, Debug)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    pub etag: Option<String>,
    pub last_modified: SystemTime,
    pub metadata: Metadata,
}

pub struct GetResult {
    pub meta: ObjectMeta,
    /// The `[start, end)` span of the object that `stream` yields.
    pub span: (u64, u64),
    pub stream: ByteStream,
}

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume after this key (the previous page's `cursor`).
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

pub const DEFAULT_LIST_LIMIT: usize = 1000;

/// What a listing knows of an object without reading it.
#[derive(Clone, Debug)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    pub last_modified: SystemTime,
    pub etag: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub objects: Vec<ListEntry>,
    pub prefixes: Vec<String>,
    /// Set when more results follow; pass it back as `ListOptions::cursor`.
    pub cursor: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
        }
    }

    pub fn parse(s: &str) -> Result<Method> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "PUT" => Ok(Method::Put),
            other => Err(Error::InvalidArgument(format!("signed URLs are for GET or PUT, not {other:?}"))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SignOptions {
    pub method: Method,
    pub expires_in: Duration,
    /// PUT: the content type the uploader must send.
    pub content_type: Option<String>,
    /// GET: the Content-Type the response carries.
    pub response_content_type: Option<String>,
    /// GET: the Content-Disposition the response carries (a download file name).
    pub response_content_disposition: Option<String>,
    /// PUT: the upload guards the server enforces on the body (stores that serve their own URLs).
    pub max_bytes: Option<u64>,
    pub allowed_content_types: Option<Vec<String>>,
}

impl SignOptions {
    pub fn new(method: Method, expires_in: Duration) -> SignOptions {
        SignOptions {
            method,
            expires_in,
            content_type: None,
            response_content_type: None,
            response_content_disposition: None,
            max_bytes: None,
            allowed_content_types: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SignedUrl {
    pub url: String,
    pub expires_at: SystemTime,
    /// Headers the request must carry (a PUT's signed content type, Azure's blob type).
    pub headers: Vec<(String, String)>,
}

impl SignedUrl {
    /// A URL whose request needs no header but, for a PUT, the content type it was signed with.
    pub fn new(url: String, expires_at: SystemTime, options: &SignOptions) -> SignedUrl {
        let headers = match (options.method, &options.content_type) {
            (Method::Put, Some(content_type)) => vec![("content-type".to_owned(), content_type.clone())],
            _ => Vec::new(),
        };
        SignedUrl { url, expires_at, headers }
    }
}

/// A signed URL at once (the key is at hand: no I/O, no thread hop), or the work that makes one
/// after fetching what signing needs (credentials that expired, a key held by a service).
pub enum Signing {
    Ready(Result<SignedUrl>),
    Pending(BoxFuture<'static, Result<SignedUrl>>),
}

/// How many deletes a bulk delete runs at once when the store has no batch call.
const DELETE_CONCURRENCY: usize = 16;

/// A store. Keys arrive validated; bodies arrive already guarded (length, size, type).
/// A failed `put` (including a body stream that yields an error) must leave the previous
/// object, or nothing, at the key. Resumable uploads will be a separate trait, so stores
/// without them need not change.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult>;

    /// Fails with `NotFound` before returning any stream when the key is missing.
    async fn download(&self, key: &Key, options: GetOptions) -> Result<GetResult>;

    async fn stat(&self, key: &Key) -> Result<ObjectMeta>;

    /// Succeeds when the key is already missing.
    async fn delete(&self, key: &Key) -> Result<()>;

    async fn list(&self, options: &ListOptions) -> Result<ListPage>;

    /// A signature, not a request: `Ready` whenever what it takes is at hand.
    fn sign_url(&self, key: &Key, options: &SignOptions) -> Signing;

    /// The signer behind `sign_url` for stores whose URLs this package serves itself.
    fn url_signer(&self) -> Option<&UrlSigner> {
        None
    }

    /// Streams the object into a new one; stores with a server-side copy override this.
    async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        let source = self.download(from, GetOptions::default()).await?;
        let options = PutOptions {
            content_type: Some(source.meta.content_type),
            metadata: source.meta.metadata,
            ..PutOptions::default()
        };
        let body = Body::stream(source.stream, Some(source.span.1 - source.span.0));
        self.put(to, body, options).await.map(|_| ())
    }

    /// Where the store can join objects itself (`concat`): the smallest a piece but the last may
    /// be. `None`: it cannot, and joined objects are streamed through this process.
    fn concat_min_part(&self) -> Option<u64> {
        None
    }

    /// Makes `key` the concatenation of `parts` (each with its size) inside the store; called
    /// only where `concat_min_part` says it can, with every part but the last at least that big.
    async fn concat(&self, key: &Key, parts: &[(Key, u64)], options: PutOptions) -> Result<PutResult> {
        let _ = (key, parts, options);
        Err(Error::Internal("this store cannot join objects".into()))
    }

    /// JS `move` (`move` is a Rust keyword): copy then delete; stores with an atomic rename
    /// override this.
    async fn move_object(&self, from: &Key, to: &Key) -> Result<()> {
        self.copy(from, to).await?;
        self.delete(from).await
    }

    /// Removes what uploads that never finished left behind before `before` (an S3 multipart
    /// upload's parts, a local store's temp files of killed writers); returns how many went.
    /// Stores whose uploads leave nothing behind have nothing to do.
    async fn delete_incomplete_uploads(&self, before: SystemTime) -> Result<u64> {
        let _ = before;
        Ok(0)
    }

    /// One result per key, in order; stores with a batch delete override this.
    async fn delete_many(&self, keys: &[Key]) -> Vec<Result<()>> {
        let mut results = Vec::with_capacity(keys.len());
        for batch in keys.chunks(DELETE_CONCURRENCY) {
            results.extend(future::join_all(batch.iter().map(|key| self.delete(key))).await);
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_object_size() {
        let r = |start, end| ByteRange { start, end };
        assert_eq!(r(0, Some(9)).resolve(100).unwrap(), (0, 10));
        assert_eq!(r(90, None).resolve(100).unwrap(), (90, 100));
        assert_eq!(r(90, Some(1000)).resolve(100).unwrap(), (90, 100));
        assert_eq!(r(0, None).resolve(0).unwrap(), (0, 0));
        assert!(r(100, None).resolve(100).is_err());
        assert!(r(5, Some(4)).resolve(100).is_err());
    }

    proptest::proptest! {
        /// Any range against any size resolves inside the object or fails as InvalidRange.
        #[test]
        fn any_range_resolves_inside_the_object_or_is_refused(
            start in proptest::prop_oneof![0u64..300, proptest::prelude::any::<u64>()],
            end in proptest::option::of(proptest::prop_oneof![0u64..300, proptest::prelude::any::<u64>()]),
            size in proptest::prop_oneof![0u64..300, proptest::prelude::any::<u64>()],
        ) {
            match (ByteRange { start, end }).resolve(size) {
                Ok((a, b)) => proptest::prop_assert!(a == start && a <= b && b <= size),
                Err(e) => proptest::prop_assert_eq!(e.code(), "INVALID_RANGE"),
            }
        }
    }
}
