//! The plain objects that cross the boundary, and their conversions to core types.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use napi_derive::napi;

use crate::core::backend::{ByteRange, ListEntry, ListOptions, ListPage, Method, ObjectMeta, PutOptions, SignOptions};
use crate::core::budget::Usage;
use crate::core::error::{Error, Result};
use crate::core::resumable::UploadStatus;
use crate::core::storage::{Quota, UploadOptions};

#[napi(object)]
pub struct UploadSettings {
    pub content_type: Option<String>,
    pub metadata: Option<HashMap<String, String>>,
    pub if_not_exists: Option<bool>,
    /// Overwrite only the version with this ETag.
    pub if_match: Option<String>,
    pub content_length: Option<f64>,
    pub max_bytes: Option<f64>,
    pub allowed_content_types: Option<Vec<String>>,
    pub quota: Option<QuotaSettings>,
}

/// The most bytes the objects under `prefix` may take, the upload included.
#[napi(object)]
pub struct QuotaSettings {
    pub prefix: String,
    pub max_bytes: f64,
}

impl QuotaSettings {
    fn into_core(self) -> Result<Quota> {
        Ok(Quota { prefix: self.prefix, max_bytes: whole_number("quota.maxBytes", self.max_bytes)? })
    }
}

/// The part-buffer memory budget, in bytes.
#[napi(object)]
pub struct MemoryBudgetInfo {
    pub limit: f64,
    pub in_use: f64,
    /// The most in use since the limit was last set.
    pub peak: f64,
    /// Uploads that hold no buffer and wait for one (one that holds some waits for those).
    pub waiting: u32,
}

impl From<Usage> for MemoryBudgetInfo {
    fn from(usage: Usage) -> MemoryBudgetInfo {
        MemoryBudgetInfo {
            limit: usage.limit as f64,
            in_use: usage.in_use as f64,
            peak: usage.peak as f64,
            waiting: u32::try_from(usage.waiting).unwrap_or(u32::MAX),
        }
    }
}

#[napi(object)]
pub struct UsageInfo {
    pub bytes: f64,
    pub objects: f64,
}

#[napi(object)]
pub struct UploadOutcome {
    pub etag: Option<String>,
    /// After an append: the resumable upload as it now is.
    pub upload: Option<UploadInfo>,
}

/// A resumable upload's state.
#[napi(object)]
pub struct UploadInfo {
    pub id: String,
    pub key: String,
    pub offset: f64,
    pub length: Option<f64>,
    pub expires_at_ms: f64,
    pub content_type: Option<String>,
    pub metadata: HashMap<String, String>,
    /// The object is stored (the upload is kept, without its bytes, until it expires).
    pub completed: bool,
}

impl From<UploadStatus> for UploadInfo {
    fn from(status: UploadStatus) -> UploadInfo {
        UploadInfo {
            id: status.id,
            key: status.key,
            offset: status.offset as f64,
            length: status.length.map(|n| n as f64),
            expires_at_ms: millis(status.expires_at),
            content_type: status.content_type,
            metadata: status.metadata,
            completed: status.completed.is_some(),
        }
    }
}

#[napi(object)]
pub struct CompletedUpload {
    pub key: String,
    pub size: f64,
    pub etag: Option<String>,
}

#[napi(object)]
pub struct RangeSettings {
    pub start: f64,
    pub end: Option<f64>,
}

#[napi(object)]
#[derive(Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: f64,
    pub content_type: String,
    pub etag: Option<String>,
    pub last_modified_ms: f64,
    pub metadata: HashMap<String, String>,
}

#[napi(object)]
pub struct ListSettings {
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[napi(object)]
pub struct ListedObject {
    pub key: String,
    pub size: f64,
    pub last_modified_ms: f64,
    pub etag: Option<String>,
}

#[napi(object)]
pub struct ListedPage {
    pub objects: Vec<ListedObject>,
    pub prefixes: Vec<String>,
    pub cursor: Option<String>,
}

#[napi(object)]
pub struct SignSettings {
    pub method: Option<String>,
    pub expires_in: f64,
    pub content_type: Option<String>,
    pub response_content_type: Option<String>,
    pub response_content_disposition: Option<String>,
    pub max_bytes: Option<f64>,
    pub allowed_content_types: Option<Vec<String>>,
}

#[napi(object)]
pub struct SignedUrlInfo {
    pub url: String,
    pub expires_at_ms: f64,
    /// Headers the request must carry, names lowercase.
    pub headers: std::collections::HashMap<String, String>,
}

/// A JS number that must be a non-negative integer.
pub fn whole_number(name: &str, value: f64) -> Result<u64> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 9_007_199_254_740_991.0 {
        Ok(value as u64)
    } else {
        Err(Error::InvalidArgument(format!("{name} must be a non-negative integer, not {value}")))
    }
}

pub fn millis(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_millis() as f64)
}

pub fn from_millis(ms: f64) -> Result<SystemTime> {
    if !ms.is_finite() {
        return Err(Error::InvalidArgument("a date must be a valid time".into()));
    }
    Ok(if ms >= 0.0 { UNIX_EPOCH + Duration::from_millis(ms as u64) } else { UNIX_EPOCH })
}

impl UploadSettings {
    pub fn into_core(self) -> Result<UploadOptions> {
        Ok(UploadOptions {
            put: PutOptions {
                content_type: self.content_type,
                metadata: self.metadata.unwrap_or_default(),
                if_not_exists: self.if_not_exists.unwrap_or(false),
                if_match: self.if_match,
            },
            content_length: self.content_length.map(|n| whole_number("contentLength", n)).transpose()?,
            max_bytes: self.max_bytes.map(|n| whole_number("maxBytes", n)).transpose()?,
            allowed_content_types: self.allowed_content_types,
            quota: self.quota.map(QuotaSettings::into_core).transpose()?,
        })
    }
}

impl RangeSettings {
    pub fn into_core(self) -> Result<ByteRange> {
        Ok(ByteRange {
            start: whole_number("range.start", self.start)?,
            end: self.end.map(|e| whole_number("range.end", e)).transpose()?,
        })
    }
}

impl From<ObjectMeta> for ObjectInfo {
    fn from(m: ObjectMeta) -> Self {
        ObjectInfo {
            key: m.key,
            size: m.size as f64,
            content_type: m.content_type,
            etag: m.etag,
            last_modified_ms: millis(m.last_modified),
            metadata: m.metadata.into_iter().collect(),
        }
    }
}

impl From<ListSettings> for ListOptions {
    fn from(s: ListSettings) -> Self {
        ListOptions {
            prefix: s.prefix.unwrap_or_default(),
            delimiter: s.delimiter,
            cursor: s.cursor,
            limit: s.limit.map(|l| l as usize),
        }
    }
}

impl From<ListEntry> for ListedObject {
    fn from(e: ListEntry) -> Self {
        ListedObject { key: e.key, size: e.size as f64, last_modified_ms: millis(e.last_modified), etag: e.etag }
    }
}

impl From<ListPage> for ListedPage {
    fn from(p: ListPage) -> Self {
        ListedPage { objects: p.objects.into_iter().map(Into::into).collect(), prefixes: p.prefixes, cursor: p.cursor }
    }
}

impl SignSettings {
    pub fn into_core(self) -> Result<SignOptions> {
        Ok(SignOptions {
            method: Method::parse(self.method.as_deref().unwrap_or("GET"))?,
            expires_in: Duration::from_secs(whole_number("expiresIn", self.expires_in)?),
            content_type: self.content_type,
            response_content_type: self.response_content_type,
            response_content_disposition: self.response_content_disposition,
            max_bytes: self.max_bytes.map(|n| whole_number("maxBytes", n)).transpose()?,
            allowed_content_types: self.allowed_content_types,
        })
    }
}
