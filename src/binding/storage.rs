//! `NativeStorage`: one class over `core::Storage` for every store. The JS `StorageBackend`
//! class wraps it and adds Node streams, error classes and the Part A signatures. Each async
//! method clones what it needs and returns a promise over an owned future (see `task`).

use std::io::Seek;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::backends::azure::{AzureBackend, AzureCredentials, AzureSettings, ConnectionString};
use crate::backends::gcs::{GcsBackend, GcsCredentialsFrom, GcsSettings};
use crate::backends::local::LocalBackend;
use crate::backends::memory::MemoryBackend;
use crate::backends::s3::{CredentialsFrom, S3Backend, S3Settings};
use crate::binding::chunk::Chunk;
use crate::binding::convert::{
    from_millis, millis, whole_number, CompletedUpload, ListSettings, ListedPage, MemoryBudgetInfo, ObjectInfo,
    RangeSettings, SignSettings, SignedUrlInfo, UploadInfo, UploadOutcome, UploadSettings, UsageInfo,
};
use crate::binding::credentials::{CredentialsProvider, JsCredentials, JsTokens, TokenProvider};
use crate::binding::streams::{NativeReader, NativeWriter, Written};
use crate::binding::task::{contained_sync, promise};
use crate::core::backend::{Backend, GetOptions, SignedUrl, Signing};
use crate::core::body::Body;
use crate::core::budget::MemoryBudget;
use crate::core::error::{Error, Result};
use crate::core::file::{read_file, regular_file_of, ReadTo};
use crate::core::key::{generate_key, Key};
use crate::core::resumable::{Checksum, ChecksumAlgorithm, NewUpload, DEFAULT_UPLOAD_TTL};
use crate::core::signing::{SignedFields, UrlSigner, Verdict};
use crate::core::storage::{Storage, UploadOptions};

#[napi(object)]
pub struct LocalSettings {
    pub root: String,
    pub base_url: String,
    pub signing_secret: Option<String>,
    /// fsync before acknowledging a write (default true).
    pub durable: Option<bool>,
}

#[napi(object)]
pub struct MemorySettings {
    pub base_url: String,
    pub signing_secret: Option<String>,
}

#[napi(object, object_to_js = false)]
pub struct S3Options {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    /// Static keys, or else `credentials_provider`; neither: the AWS default chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Called whenever the credentials are about to expire (an S3Client's provider).
    pub credentials_provider: Option<CredentialsProvider>,
    /// Multipart part size in bytes (default 8 MiB, at least 5 MiB).
    pub part_size: Option<u32>,
    /// Parts uploaded at once (default 4).
    pub queue_size: Option<u32>,
    /// Seconds a transfer may move no bytes before it fails (default 20).
    pub stall_timeout: Option<u32>,
    /// Sign each body's SHA-256 (default: over plain HTTP only).
    pub sign_payload: Option<bool>,
    /// PEM certificates to trust beyond the system's.
    pub ca_certificates: Option<String>,
}

#[napi(object, object_to_js = false)]
pub struct AzureOptions {
    /// The whole of what the portal's "connection string" gives; or the fields below.
    pub connection_string: Option<String>,
    pub account_name: Option<String>,
    pub container: String,
    /// Default `https://<account>.blob.core.windows.net`; Azurite: `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<String>,
    pub account_key: Option<String>,
    pub sas_token: Option<String>,
    /// Asked for a storage token shortly before the one held expires (the app's TokenCredential).
    pub token_provider: Option<TokenProvider>,
    /// Block size in bytes (default 8 MiB).
    pub part_size: Option<u32>,
    /// Blocks uploaded at once (default 4).
    pub queue_size: Option<u32>,
    /// Seconds a transfer may move no bytes before it fails (default 20).
    pub stall_timeout: Option<u32>,
    /// PEM certificates to trust beyond the system's.
    pub ca_certificates: Option<String>,
}

#[napi(object, object_to_js = false)]
pub struct GcsOptions {
    pub bucket: String,
    pub endpoint: Option<String>,
    /// A service-account key file's path, or its content as JSON; neither: anonymous with an
    /// endpoint, application default credentials without.
    pub key_filename: Option<String>,
    pub credentials_json: Option<String>,
    /// Resumable chunk size in bytes (default 8 MiB, a multiple of 256 KiB).
    pub part_size: Option<u32>,
    /// Chunks read ahead while one is sent (default 4).
    pub queue_size: Option<u32>,
    /// Seconds a transfer may move no bytes before it fails (default 20).
    pub stall_timeout: Option<u32>,
    /// PEM certificates to trust beyond the system's.
    pub ca_certificates: Option<String>,
}

/// The fields of a request to a signed URL, as the HTTP handler parsed them.
#[napi(object)]
pub struct SignedRequest {
    pub method: String,
    pub key: String,
    pub expires: String,
    pub content_type: Option<String>,
    pub response_content_type: Option<String>,
    pub response_content_disposition: Option<String>,
    pub max_bytes: Option<String>,
    pub allowed_types: Option<String>,
    pub signature: String,
}

#[napi]
pub struct NativeStorage {
    storage: Storage,
    backend: Arc<dyn Backend>,
}

fn random_secret() -> Vec<u8> {
    [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat()
}

fn range_options(range: Option<RangeSettings>) -> Result<GetOptions> {
    Ok(GetOptions { range: range.map(RangeSettings::into_core).transpose()? })
}

#[napi]
impl NativeStorage {
    fn wrap(backend: Arc<dyn Backend>) -> NativeStorage {
        NativeStorage { storage: Storage::new(Arc::clone(&backend)), backend }
    }

    /// Opens (creating if needed) a local store; the folder work runs off the JS thread.
    #[napi(ts_return_type = "Promise<NativeStorage>")]
    pub fn open_local<'env>(env: &'env Env, settings: LocalSettings) -> napi::Result<PromiseRaw<'env, NativeStorage>> {
        let secret = settings.signing_secret.map(String::into_bytes);
        let durable = settings.durable.unwrap_or(true);
        promise(env, async move {
            let backend = LocalBackend::open(settings.root.into(), settings.base_url, secret, durable).await?;
            Ok(Self::wrap(Arc::new(backend)))
        })
    }

    #[napi(factory)]
    pub fn memory(settings: MemorySettings) -> napi::Result<NativeStorage> {
        contained_sync(|| {
            let secret = settings.signing_secret.map_or_else(random_secret, String::into_bytes);
            let signer = UrlSigner::new(secret, &settings.base_url)?;
            Ok(Self::wrap(Arc::new(MemoryBackend::new(signer))))
        })
    }

    #[napi(factory)]
    pub fn s3(options: S3Options) -> napi::Result<NativeStorage> {
        contained_sync(|| {
            let credentials = match (options.credentials_provider, options.access_key_id, options.secret_access_key) {
                (Some(provider), _, _) => CredentialsFrom::Source(Box::new(JsCredentials(provider))),
                (None, Some(id), Some(secret)) => {
                    CredentialsFrom::Keys(Credentials::new(id, secret, options.session_token, None, "static keys"))
                }
                (None, None, None) => CredentialsFrom::AwsDefaultChain,
                _ => {
                    return Err(Error::Configuration("S3 credentials need both accessKeyId and secretAccessKey".into()))
                }
            };
            let backend = S3Backend::new(S3Settings {
                bucket: options.bucket,
                region: options.region,
                endpoint: options.endpoint,
                force_path_style: options.force_path_style,
                credentials,
                part_size: options.part_size.map_or(8 << 20, |n| n as usize),
                concurrency: options.queue_size.map_or(4, |n| n as usize),
                stall_timeout: Duration::from_secs(options.stall_timeout.map_or(20, u64::from)),
                sign_payload: options.sign_payload,
                ca_certificates: options.ca_certificates,
            })?;
            Ok(Self::wrap(Arc::new(backend)))
        })
    }

    #[napi(factory)]
    pub fn azure(options: AzureOptions) -> napi::Result<NativeStorage> {
        contained_sync(|| {
            let (account, endpoint, credentials) = match options.connection_string {
                Some(text) => {
                    let parsed = ConnectionString::parse(&text)?;
                    (parsed.account, options.endpoint.or(parsed.endpoint), Some(parsed.credentials))
                }
                None => {
                    let credentials = match (options.account_key, options.sas_token, options.token_provider) {
                        (Some(key), None, None) => Some(AzureCredentials::account_key(&key)?),
                        (None, Some(token), None) => Some(AzureCredentials::sas(&token)?),
                        (None, None, Some(provider)) => Some(AzureCredentials::tokens(Box::new(JsTokens(provider)))),
                        // Neither: a service principal from the environment.
                        (None, None, None) => None,
                        _ => {
                            return Err(Error::Configuration(
                                "Azure takes one of accountKey, sasToken or credential, not several".into(),
                            ))
                        }
                    };
                    let account = options
                        .account_name
                        .ok_or_else(|| Error::Configuration("Azure needs an accountName".into()))?;
                    (account, options.endpoint, credentials)
                }
            };
            let backend = AzureBackend::new(AzureSettings {
                account,
                container: options.container,
                endpoint,
                credentials,
                part_size: options.part_size.map_or(8 << 20, |n| n as usize),
                concurrency: options.queue_size.map_or(4, |n| n as usize),
                stall_timeout: Duration::from_secs(options.stall_timeout.map_or(20, u64::from)),
                ca_certificates: options.ca_certificates,
            })?;
            Ok(Self::wrap(Arc::new(backend)))
        })
    }

    #[napi(factory)]
    pub fn gcs(options: GcsOptions) -> napi::Result<NativeStorage> {
        contained_sync(|| {
            let credentials = match (options.credentials_json, options.key_filename) {
                (Some(json), _) => GcsCredentialsFrom::Json(json.into_bytes()),
                (None, Some(path)) => GcsCredentialsFrom::File(path.into()),
                (None, None) => GcsCredentialsFrom::Default,
            };
            let backend = GcsBackend::new(GcsSettings {
                bucket: options.bucket,
                endpoint: options.endpoint,
                credentials,
                part_size: options.part_size.map_or(8 << 20, |n| n as usize),
                concurrency: options.queue_size.map_or(4, |n| n as usize),
                stall_timeout: Duration::from_secs(options.stall_timeout.map_or(20, u64::from)),
                ca_certificates: options.ca_certificates,
            })?;
            Ok(Self::wrap(Arc::new(backend)))
        })
    }

    /// Stores a whole buffer; the bytes are copied before the call returns.
    #[napi(ts_return_type = "Promise<UploadOutcome>")]
    pub fn put<'env>(
        &self,
        env: &'env Env,
        key: String,
        data: BufferSlice,
        settings: UploadSettings,
    ) -> napi::Result<PromiseRaw<'env, UploadOutcome>> {
        let body = Body::bytes(Bytes::copy_from_slice(&data));
        let storage = self.storage.clone();
        promise(env, async move {
            let result = storage.put(&key, body, settings.into_core()?).await?;
            Ok(UploadOutcome { etag: result.etag, upload: None })
        })
    }

    /// Starts a streamed upload; the store reads chunks as the writer receives them.
    #[napi]
    pub fn upload(&self, key: String, settings: UploadSettings) -> napi::Result<NativeWriter> {
        contained_sync(|| {
            let options = settings.into_core()?;
            Ok(NativeWriter::start(options.content_length, self.putting(key, options)))
        })
    }

    /// Starts an upload whose body the addon reads from a file JS has open (an untouched
    /// `fs.ReadStream`), so no chunk crosses from JS. `start` and the inclusive `end` mean what
    /// they mean to `fs.createReadStream`; without `start` the file is read from its current
    /// offset. Null when `fd` is not a regular file: JS then streams it as any other body.
    #[napi]
    pub fn upload_file(
        &self,
        key: String,
        settings: UploadSettings,
        fd: i32,
        start: Option<f64>,
        end: Option<f64>,
    ) -> napi::Result<Option<NativeWriter>> {
        contained_sync(|| {
            let options = settings.into_core()?;
            let Some(mut file) = regular_file_of(fd)? else {
                return Ok(None);
            };
            let (start, end) = (
                start.map(|n| whole_number("start", n)).transpose()?,
                end.map(|n| whole_number("end", n)).transpose()?,
            );
            let from = match start {
                Some(start) => start,
                None => file.stream_position().map_err(|e| Error::io("seek", e))?,
            };
            // An end counts from `start`, or from where reading began without one.
            let to = end
                .map_or(u64::MAX, |end| from.saturating_add(end.saturating_add(1).saturating_sub(start.unwrap_or(0))));
            let body = read_file(file, from, ReadTo::AtMost(to));
            Ok(Some(NativeWriter::reading_file(body, options.content_length, self.putting(key, options))))
        })
    }

    /// What a streamed upload does with its body: store it at `key`.
    fn putting(&self, key: String, options: UploadOptions) -> impl FnOnce(Body) -> BoxFuture<'static, Result<Written>> {
        let storage = self.storage.clone();
        move |body| async move { storage.put(&key, body, options).await.map(Written::Put) }.boxed()
    }

    /// Starts a resumable upload of `key`; `length` may be stated later. `expiresIn` in seconds.
    #[napi(ts_return_type = "Promise<UploadInfo>")]
    pub fn create_upload<'env>(
        &self,
        env: &'env Env,
        key: String,
        length: Option<f64>,
        expires_in: Option<f64>,
        settings: UploadSettings,
    ) -> napi::Result<PromiseRaw<'env, UploadInfo>> {
        let storage = self.storage.clone();
        promise(env, async move {
            let new = NewUpload {
                key,
                length: length.map(|n| whole_number("length", n)).transpose()?,
                options: settings.into_core()?,
                ttl: match expires_in {
                    Some(seconds) => Duration::from_secs(whole_number("expiresIn", seconds)?.max(1)),
                    None => DEFAULT_UPLOAD_TTL,
                },
            };
            Ok(storage.create_upload(new).await?.into())
        })
    }

    #[napi(ts_return_type = "Promise<UploadInfo>")]
    pub fn upload_status<'env>(&self, env: &'env Env, id: String) -> napi::Result<PromiseRaw<'env, UploadInfo>> {
        let storage = self.storage.clone();
        promise(env, async move { Ok(storage.upload_status(&id).await?.into()) })
    }

    /// Appends the writer's body at `offset`; with a checksum, the body must have that digest.
    #[napi]
    pub fn append_upload(
        &self,
        id: String,
        offset: f64,
        checksum_algorithm: Option<String>,
        checksum: Option<Buffer>,
    ) -> napi::Result<NativeWriter> {
        contained_sync(|| {
            let offset = whole_number("offset", offset)?;
            let checksum = match (checksum_algorithm, checksum) {
                (Some(algorithm), Some(digest)) => {
                    Some(Checksum { algorithm: ChecksumAlgorithm::parse(&algorithm)?, digest: digest.to_vec() })
                }
                (None, None) => None,
                _ => return Err(Error::InvalidArgument("a checksum needs both its algorithm and its digest".into())),
            };
            let storage = self.storage.clone();
            Ok(NativeWriter::start(None, move |body| async move {
                storage.append_upload(&id, offset, body, checksum).await.map(Written::Appended)
            }))
        })
    }

    #[napi(ts_return_type = "Promise<UploadInfo>")]
    pub fn declare_upload_length<'env>(
        &self,
        env: &'env Env,
        id: String,
        length: f64,
    ) -> napi::Result<PromiseRaw<'env, UploadInfo>> {
        let storage = self.storage.clone();
        promise(
            env,
            async move { Ok(storage.declare_upload_length(&id, whole_number("length", length)?).await?.into()) },
        )
    }

    #[napi(ts_return_type = "Promise<CompletedUpload>")]
    pub fn complete_upload<'env>(&self, env: &'env Env, id: String) -> napi::Result<PromiseRaw<'env, CompletedUpload>> {
        let storage = self.storage.clone();
        promise(env, async move {
            let done = storage.complete_upload(&id).await?;
            Ok(CompletedUpload { key: done.key, size: done.size as f64, etag: done.result.etag })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn abort_upload<'env>(&self, env: &'env Env, id: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.abort_upload(&id).await })
    }

    /// Removes unfinished uploads last changed before `beforeMs`, or else past their expiry.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn delete_expired_uploads<'env>(
        &self,
        env: &'env Env,
        before_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let storage = self.storage.clone();
        promise(env, async move {
            let before = before_ms.map(from_millis).transpose()?;
            Ok(storage.delete_expired_uploads(before).await? as f64)
        })
    }

    /// Rejects with FILE_NOT_FOUND before any stream exists when the key is missing.
    #[napi(ts_return_type = "Promise<NativeReader>")]
    pub fn download<'env>(
        &self,
        env: &'env Env,
        key: String,
        range: Option<RangeSettings>,
    ) -> napi::Result<PromiseRaw<'env, NativeReader>> {
        let storage = self.storage.clone();
        promise(env, async move {
            let result = storage.download(&key, range_options(range)?).await?;
            Ok(NativeReader::new(result.meta.into(), result.span, result.stream))
        })
    }

    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        key: String,
        range: Option<RangeSettings>,
    ) -> napi::Result<PromiseRaw<'env, Chunk>> {
        let storage = self.storage.clone();
        promise(env, async move { Ok(Chunk(Vec::from(storage.get(&key, range_options(range)?).await?))) })
    }

    #[napi(ts_return_type = "Promise<ObjectInfo>")]
    pub fn stat<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, ObjectInfo>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.stat(&key).await.map(Into::into) })
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn exists<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, bool>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.exists(&key).await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(&self, env: &'env Env, key: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.delete(&key).await })
    }

    #[napi(ts_return_type = "Promise<ListedPage>")]
    pub fn list<'env>(&self, env: &'env Env, settings: ListSettings) -> napi::Result<PromiseRaw<'env, ListedPage>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.list(settings.into()).await.map(Into::into) })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn copy<'env>(&self, env: &'env Env, from: String, to: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.copy(&from, &to).await })
    }

    /// `move` in JS (a keyword in Rust).
    #[napi(js_name = "move", ts_return_type = "Promise<void>")]
    pub fn move_object<'env>(&self, env: &'env Env, from: String, to: String) -> napi::Result<PromiseRaw<'env, ()>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.move_object(&from, &to).await })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn delete_many<'env>(&self, env: &'env Env, keys: Vec<String>) -> napi::Result<PromiseRaw<'env, f64>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.delete_many(&keys).await.map(|n| n as f64) })
    }

    /// `all` must be set to delete under the empty prefix (the whole store).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn delete_prefix<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        all: Option<bool>,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.delete_prefix(&prefix, all.unwrap_or(false)).await.map(|n| n as f64) })
    }

    #[napi(ts_return_type = "Promise<UsageInfo>")]
    pub fn usage<'env>(&self, env: &'env Env, prefix: String) -> napi::Result<PromiseRaw<'env, UsageInfo>> {
        let storage = self.storage.clone();
        promise(env, async move {
            let usage = storage.usage(&prefix).await?;
            Ok(UsageInfo { bytes: usage.bytes as f64, objects: usage.objects as f64 })
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn delete_older_than<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        before_ms: f64,
        all: Option<bool>,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let storage = self.storage.clone();
        promise(env, async move {
            let before = from_millis(before_ms)?;
            storage.delete_older_than(&prefix, before, all.unwrap_or(false)).await.map(|n| n as f64)
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn delete_incomplete_uploads<'env>(
        &self,
        env: &'env Env,
        before_ms: f64,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let storage = self.storage.clone();
        promise(env, async move { storage.delete_incomplete_uploads(from_millis(before_ms)?).await.map(|n| n as f64) })
    }

    /// At once when the signing key is at hand (no I/O, no thread hop); a promise when it must
    /// be fetched first (expired credentials).
    #[napi(ts_return_type = "SignedUrlInfo | Promise<SignedUrlInfo>")]
    pub fn sign_url<'env>(
        &self,
        env: &'env Env,
        key: String,
        settings: SignSettings,
    ) -> napi::Result<Either<SignedUrlInfo, PromiseRaw<'env, SignedUrlInfo>>> {
        let info = |signed: SignedUrl| SignedUrlInfo {
            url: signed.url,
            expires_at_ms: millis(signed.expires_at),
            headers: signed.headers.into_iter().collect(),
        };
        let signing = contained_sync(|| Ok(self.storage.sign_url(&key, &settings.into_core()?)))?;
        match signing {
            Signing::Ready(signed) => contained_sync(|| signed.map(info)).map(Either::A),
            Signing::Pending(work) => promise(env, async move { work.await.map(info) }).map(Either::B),
        }
    }

    /// "valid", "expired" or "invalid"; the signature is compared in constant time.
    #[napi]
    pub fn verify_signed_request(&self, request: SignedRequest) -> napi::Result<String> {
        contained_sync(|| {
            let signer = self.backend.url_signer().ok_or_else(|| {
                Error::Configuration("this backend's signed URLs are served by the store itself".into())
            })?;
            let fields = SignedFields {
                method: &request.method,
                key: &request.key,
                expires: &request.expires,
                content_type: request.content_type.as_deref().unwrap_or(""),
                response_content_type: request.response_content_type.as_deref().unwrap_or(""),
                response_content_disposition: request.response_content_disposition.as_deref().unwrap_or(""),
                max_bytes: request.max_bytes.as_deref().unwrap_or(""),
                allowed_types: request.allowed_types.as_deref().unwrap_or(""),
            };
            let verdict = match signer.verify(&fields, &request.signature, SystemTime::now()) {
                Verdict::Valid => "valid",
                Verdict::Expired => "expired",
                Verdict::BadSignature => "invalid",
            };
            Ok(verdict.to_owned())
        })
    }
}

/// Makes the native side panic where asked ("sync", "async" or "blocking"), so the tests can
/// show that a panic reaches JS as a typed error and the process lives on. Not part of the API.
#[napi(ts_return_type = "Promise<void>")]
pub fn panic_for_testing<'env>(env: &'env Env, place: String) -> napi::Result<PromiseRaw<'env, ()>> {
    let message = format!("deliberate panic ({place})");
    match place.as_str() {
        "sync" => contained_sync(|| -> Result<()> { panic!("{message}") }).map(|_| unreachable!()),
        "async" => promise(env, async move { panic!("{message}") }),
        _ => promise(env, async move {
            tokio::task::spawn_blocking(move || -> () { panic!("{message}") })
                .await
                .map_err(|e| Error::Internal(format!("a background task failed: {e}")))
        }),
    }
}

/// Sets the bytes the part buffers of all uploads in the process may take together (counted
/// in whole KiB); lowered below what is in use, it holds once enough buffers are freed.
#[napi]
pub fn set_memory_budget(bytes: f64) -> napi::Result<()> {
    contained_sync(|| {
        let bytes = whole_number("bytes", bytes)?;
        if bytes == 0 {
            return Err(Error::InvalidArgument("the memory budget must be at least 1 byte".into()));
        }
        MemoryBudget::global().set_limit(bytes);
        Ok(())
    })
}

#[napi]
pub fn memory_budget() -> napi::Result<MemoryBudgetInfo> {
    contained_sync(|| Ok(MemoryBudget::global().usage().into()))
}

/// `prefix/YYYY/MM/<uuid>.<ext>`.
#[napi]
pub fn generate_storage_key(prefix: Option<String>, filename: Option<String>) -> napi::Result<String> {
    contained_sync(|| {
        generate_key(prefix.as_deref().unwrap_or(""), filename.as_deref(), SystemTime::now()).map(|k| k.to_string())
    })
}

/// Refuses a key the stores would refuse (INVALID_KEY), before any I/O.
#[napi]
pub fn check_storage_key(key: String) -> napi::Result<()> {
    contained_sync(|| Key::parse(key).map(|_| ()))
}
