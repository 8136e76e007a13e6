//! Streams across the boundary. Uploads: JS hands chunks to a bounded channel (`tryWrite`, or
//! `write` to wait for room: backpressure), the store consumes it as a `Body`. Downloads: JS awaits `read()`
//! per chunk; `cancel()` drops the Rust stream, which closes the file or connection.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::binding::chunk::Chunk;
use crate::binding::convert::{ObjectInfo, UploadOutcome};
use crate::binding::error::to_js;
use crate::binding::task::{contained, promise, promise_js};
use crate::core::backend::PutResult;
use crate::core::body::{Body, ByteStream};
use crate::core::error::Error;
use crate::core::resumable::UploadStatus;

/// Chunks in flight between JS and the store; with JS's own chunk this bounds upload memory.
const UPLOAD_QUEUE: usize = 4;

/// What a writer's body went into: a plain upload, or an append to a resumable one.
#[derive(Clone)]
pub enum Written {
    Put(PutResult),
    Appended(UploadStatus),
}

type Outcome = Shared<BoxFuture<'static, std::result::Result<Written, Arc<Error>>>>;

#[napi]
pub struct NativeWriter {
    sender: Mutex<Option<mpsc::Sender<Bytes>>>,
    abort: CancellationToken,
    outcome: Outcome,
    /// Set when the body is a file the addon reads itself.
    file: Option<Arc<FileReading>>,
}

/// How far the addon has read a file body. The body ends only once JS closes the writer, so
/// that JS reports the last progress before the store commits anything (as it does for chunks
/// it writes itself): an `onProgress` that throws then stores nothing.
struct FileReading {
    loaded: AtomicU64,
    read_to_end: CancellationToken,
    closed: CancellationToken,
}

/// How often `progress()` reports while a file body is read.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

#[napi(object)]
pub struct ReadProgress {
    pub loaded: f64,
    /// The file is read to its end: `loaded` is final.
    pub done: bool,
}

impl NativeWriter {
    /// A writer whose body, the chunks JS writes, `consume` stores (a put, an append).
    pub fn start<F>(length: Option<u64>, consume: impl FnOnce(Body) -> F) -> NativeWriter
    where
        F: Future<Output = std::result::Result<Written, Error>> + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel::<Bytes>(UPLOAD_QUEUE);
        let abort = CancellationToken::new();
        let storing = consume(Body::stream(incoming(receiver, abort.clone()), length));
        NativeWriter::run(Some(sender), abort, storing)
    }

    /// A writer that takes no chunks: the addon reads the body from a file itself, and JS
    /// follows its `progress()`, then closes or aborts it.
    pub fn reading_file<F>(file: ByteStream, length: Option<u64>, consume: impl FnOnce(Body) -> F) -> NativeWriter
    where
        F: Future<Output = std::result::Result<Written, Error>> + Send + 'static,
    {
        let reading = Arc::new(FileReading {
            loaded: AtomicU64::new(0),
            read_to_end: CancellationToken::new(),
            closed: CancellationToken::new(),
        });
        let counting = Arc::clone(&reading);
        let file = file.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                counting.loaded.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
        let ending = Arc::clone(&reading);
        let close = stream::once(async move {
            ending.read_to_end.cancel();
            ending.closed.cancelled().await;
        })
        .filter_map(|()| async { None });
        let storing = consume(Body::stream(file.chain(close).boxed(), length));
        let mut writer = NativeWriter::run(None, CancellationToken::new(), storing);
        writer.file = Some(reading);
        writer
    }

    fn run<F>(sender: Option<mpsc::Sender<Bytes>>, abort: CancellationToken, storing: F) -> NativeWriter
    where
        F: Future<Output = std::result::Result<Written, Error>> + Send + 'static,
    {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let aborted = abort.clone();
        napi::bindgen_prelude::spawn(async move {
            // An abort ends the upload even while the store waits for the server: the put is
            // dropped (a multipart upload then aborts itself in the background).
            let result = tokio::select! {
                biased;
                _ = aborted.cancelled() => Err(Error::Aborted("the upload was aborted".into())),
                result = contained(storing) => result,
            };
            let _ = done.send(result);
        });
        let outcome = async move {
            match outcome.await {
                Ok(result) => result.map_err(Arc::new),
                Err(_) => Err(Arc::new(Error::Aborted("the upload task ended early".into()))),
            }
        };
        NativeWriter { sender: Mutex::new(sender), abort, outcome: outcome.boxed().shared(), file: None }
    }

    /// Held only for an instant, and nothing panics while it is held; a poisoned lock still
    /// guards a valid sender.
    fn sender(&self) -> MutexGuard<'_, Option<mpsc::Sender<Bytes>>> {
        self.sender.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The channel as a body stream that fails once the upload is aborted.
fn incoming(receiver: mpsc::Receiver<Bytes>, abort: CancellationToken) -> ByteStream {
    stream::unfold((receiver, abort), |(mut receiver, abort)| async move {
        let next = tokio::select! {
            biased;
            _ = abort.cancelled() => Some(Err(Error::Aborted("the upload was aborted".into()))),
            chunk = receiver.recv() => chunk.map(Ok),
        };
        next.map(|item| (item, (receiver, abort)))
    })
    .boxed()
}

#[napi]
impl NativeWriter {
    /// Queues the chunk at once if there is room and returns true; false means "await
    /// `write`", which waits for room or reports why the upload stopped. Skipping the promise
    /// when there is room saves a round trip through the runtime for most chunks.
    #[napi]
    pub fn try_write(&self, chunk: BufferSlice) -> bool {
        // try_reserve never waits, so the lock is held only for an instant (no sender clone per chunk).
        let sender = self.sender();
        let permit = sender.as_ref().and_then(|sender| sender.try_reserve().ok());
        permit.map(|permit| permit.send(Bytes::copy_from_slice(&chunk))).is_some()
    }

    /// Resolves once the chunk is queued; rejects with the upload's own error if it has failed.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn write<'env>(&self, env: &'env Env, chunk: BufferSlice) -> napi::Result<PromiseRaw<'env, ()>> {
        let bytes = Bytes::copy_from_slice(&chunk);
        let sender = self.sender().clone();
        let outcome = self.outcome.clone();
        promise_js(env, async move {
            let queued = match sender {
                Some(sender) => sender.send(bytes).await.is_ok(),
                None => false,
            };
            if queued {
                return Ok(());
            }
            // The store stopped reading: report why.
            match outcome.await {
                Err(e) => Err(to_js(&e)),
                Ok(_) => Err(to_js(&Error::InvalidArgument("write after the upload was closed".into()))),
            }
        })
    }

    /// A file body's progress, once `PROGRESS_EVERY` has passed or the file is read to its
    /// end; rejects with the upload's error if it has failed.
    #[napi(ts_return_type = "Promise<ReadProgress>")]
    pub fn progress<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ReadProgress>> {
        let (file, outcome) = (self.file.clone(), self.outcome.clone());
        promise_js(env, async move {
            let Some(file) = file else {
                return Err(to_js(&Error::InvalidArgument("only a file body reports its progress".into())));
            };
            let done = tokio::select! {
                _ = file.read_to_end.cancelled() => true,
                _ = tokio::time::sleep(PROGRESS_EVERY) => false,
                result = outcome => result.map(|_| true).map_err(|e| to_js(&e))?,
            };
            Ok(ReadProgress { loaded: file.loaded.load(Ordering::Relaxed) as f64, done })
        })
    }

    /// Ends the body and resolves when the object (or the appended segment) is stored.
    #[napi(ts_return_type = "Promise<UploadOutcome>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, UploadOutcome>> {
        self.sender().take();
        if let Some(file) = &self.file {
            file.closed.cancel();
        }
        let outcome = self.outcome.clone();
        promise_js(env, async move {
            match outcome.await.map_err(|e| to_js(&e))? {
                Written::Put(result) => Ok(UploadOutcome { etag: result.etag, upload: None }),
                Written::Appended(status) => Ok(UploadOutcome { etag: None, upload: Some(status.into()) }),
            }
        })
    }

    /// Fails the upload; the store discards what it had received.
    #[napi]
    pub fn abort(&self) {
        self.abort.cancel();
        self.sender().take();
    }
}

impl Drop for NativeWriter {
    fn drop(&mut self) {
        // A writer collected without close() must not leave a half-written upload running.
        self.abort.cancel();
    }
}

#[napi(object)]
pub struct DownloadInfo {
    pub object: ObjectInfo,
    pub start: f64,
    pub end: f64,
}

#[napi]
pub struct NativeReader {
    info: ObjectInfo,
    span: (u64, u64),
    stream: Arc<tokio::sync::Mutex<Option<ByteStream>>>,
    cancel: CancellationToken,
}

impl NativeReader {
    pub fn new(info: ObjectInfo, span: (u64, u64), stream: ByteStream) -> NativeReader {
        NativeReader {
            info,
            span,
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
            cancel: CancellationToken::new(),
        }
    }
}

#[napi]
impl NativeReader {
    /// The object's metadata and the `[start, end)` span this reader yields.
    #[napi(getter)]
    pub fn info(&self) -> DownloadInfo {
        DownloadInfo { object: self.info.clone(), start: self.span.0 as f64, end: self.span.1 as f64 }
    }

    /// The next chunk, or null at the end (or after `cancel()`).
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn read<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<Chunk>>> {
        let (stream, cancel) = (Arc::clone(&self.stream), self.cancel.clone());
        promise(env, async move {
            let mut slot = stream.lock().await;
            let Some(stream) = slot.as_mut() else {
                return Ok(None);
            };
            let next = tokio::select! {
                _ = cancel.cancelled() => None,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(chunk)) => Ok(Some(Chunk(Vec::from(chunk)))),
                other => {
                    *slot = None;
                    other.transpose().map(|_| None)
                }
            }
        })
    }

    /// Stops the download; the store's stream is dropped now or when a pending read returns.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
        if let Ok(mut slot) = self.stream.try_lock() {
            slot.take();
        }
    }
}

impl Drop for NativeReader {
    fn drop(&mut self) {
        // A reader collected (or its worker torn down) mid-read ends its download at once.
        self.cancel.cancel();
    }
}
