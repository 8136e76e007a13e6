//! Bodies too long for one request, sent in parts: the one bounded driver every store uses.
//! A store says how one part goes up, how the parts become the object, and how to give up;
//! the driver cuts the body, keeps at most `concurrency` parts in memory and in flight, and
//! gives up (aborts) on any failure, so a failed upload leaves no parts behind.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::task::JoinSet;

use crate::core::backend::PutResult;
use crate::core::body::{Body, ByteStream};
use crate::core::error::{Error, Result};

/// A body is held as its chunks up to this size before it gets a part buffer.
const HELD_BEFORE_BUFFERING: usize = 1 << 20;

/// One multipart upload, as a store carries it out.
#[async_trait]
pub trait Parts: Send + Sync + 'static {
    /// Sends part `number` (from 1); returns what `complete` names it by (an ETag, a block id).
    async fn put_part(&self, number: u32, data: Bytes) -> Result<String>;

    /// Makes the object of the parts, given in order.
    async fn complete(&self, parts: Vec<(u32, String)>) -> Result<PutResult>;

    /// Discards what was sent; the driver calls it once, after any failure.
    async fn abort(&self);
}

/// How a store cuts bodies.
#[derive(Clone, Copy, Debug)]
pub struct PartLimits {
    pub part_size: usize,
    /// Parts in memory and in flight at once.
    pub concurrency: usize,
    /// Parts one upload may have; a stated length that needs more gets larger parts.
    pub max_parts: u64,
}

/// A body after its first part was read: all of it, or the first of several parts.
pub enum Cut {
    Whole(Bytes),
    Parts(Bytes, PartReader),
}

impl PartLimits {
    /// Reads the first part of `body`; a body no longer than one part comes back whole.
    pub async fn cut(&self, body: Body) -> Result<Cut> {
        let size = match body.length {
            Some(len) => self.part_size.max(len.div_ceil(self.max_parts) as usize),
            None => self.part_size,
        };
        let pool = Arc::new(PartPool { size, keep: self.concurrency, free: Mutex::new(Vec::new()) });
        let mut reader = PartReader { stream: body.stream, size, leftover: None, ended: false, pool };
        let first = reader.next_part().await?.unwrap_or_default();
        Ok(if reader.at_end().await? { Cut::Whole(first) } else { Cut::Parts(first, reader) })
    }
}

/// Sends `first` and the rest of `reader` as parts of `upload`, at most `concurrency` at once,
/// and completes it; after any failure, aborts it and reports the failure. Dropped before it
/// ends (the caller gave up: an abort, a worker torn down), it aborts the upload in the
/// background, so no parts are left behind then either.
pub async fn send_parts(
    upload: Arc<dyn Parts>,
    first: Bytes,
    reader: PartReader,
    concurrency: usize,
) -> Result<PutResult> {
    let mut unfinished = AbortOnDrop(Some(Arc::clone(&upload)));
    let sent = send_all(Arc::clone(&upload), first, reader, concurrency).await;
    let outcome = match sent {
        Ok(parts) => upload.complete(parts).await,
        Err(e) => Err(e),
    };
    unfinished.0 = None;
    if outcome.is_err() {
        upload.abort().await;
    }
    outcome
}

/// Aborts an upload that was given up on mid-way, without waiting for the abort.
struct AbortOnDrop(Option<Arc<dyn Parts>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let (Some(upload), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { upload.abort().await });
        }
    }
}

async fn send_all(
    upload: Arc<dyn Parts>,
    first: Bytes,
    mut reader: PartReader,
    concurrency: usize,
) -> Result<Vec<(u32, String)>> {
    let mut uploads = JoinSet::new();
    let mut sent = Vec::new();
    let mut next = Some(first);
    let mut number = 1;
    while let Some(data) = next {
        let (upload, pool) = (Arc::clone(&upload), Arc::clone(&reader.pool));
        uploads.spawn(async move {
            let id = upload.put_part(number, data.clone()).await;
            pool.give(data);
            Ok((number, id?))
        });
        number += 1;
        // The next part is read only once one is done: at most `concurrency` in memory.
        while uploads.len() >= concurrency {
            sent.push(joined(uploads.join_next().await)?);
        }
        next = reader.next_part().await?;
    }
    while let Some(done) = uploads.join_next().await {
        sent.push(joined(Some(done))?);
    }
    sent.sort_by_key(|(number, _)| *number);
    Ok(sent)
}

fn joined<T>(done: Option<std::result::Result<Result<T>, tokio::task::JoinError>>) -> Result<T> {
    match done {
        Some(Ok(part)) => part,
        Some(Err(e)) => Err(Error::Internal(format!("a part upload failed: {e}"))),
        None => Err(Error::Internal("no part upload was running".into())),
    }
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
        let pooled = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop();
        pooled.unwrap_or_else(|| BytesMut::with_capacity(self.size))
    }

    /// Takes a part back once its upload no longer holds it.
    fn give(&self, part: Bytes) {
        if let Ok(mut buffer) = part.try_into_mut() {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            if buffer.capacity() >= self.size && free.len() < self.keep {
                buffer.clear();
                free.push(buffer);
            }
        }
    }
}

/// Cuts a body into parts of exactly `size` bytes (the last may be shorter).
pub struct PartReader {
    stream: ByteStream,
    /// The pool's part size.
    size: usize,
    leftover: Option<Bytes>,
    ended: bool,
    pool: Arc<PartPool>,
}

impl PartReader {
    async fn next_part(&mut self) -> Result<Option<Bytes>> {
        // Chunks are held as they come until there are enough to be worth a part buffer: a
        // small body is sent as it came, never copied into a buffer the size of a part.
        let mut held: Vec<Bytes> = Vec::new();
        let mut part: Option<BytesMut> = None;
        let mut len = 0;
        while len < self.size {
            let mut chunk = match self.leftover.take() {
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
            if chunk.is_empty() {
                continue;
            }
            let room = self.size - len;
            if chunk.len() > room {
                self.leftover = Some(chunk.split_off(room));
            }
            len += chunk.len();
            match part.as_mut() {
                Some(part) => part.extend_from_slice(&chunk),
                None => held.push(chunk),
            }
            if part.is_none() && len >= HELD_BEFORE_BUFFERING && len < self.size {
                let mut buffer = self.pool.take();
                held.drain(..).for_each(|chunk| buffer.extend_from_slice(&chunk));
                part = Some(buffer);
            }
        }
        Ok(match (part, held.len()) {
            (Some(part), _) => Some(part.freeze()),
            (None, 0) => None,
            (None, 1) => held.pop(),
            (None, _) => {
                let mut joined = BytesMut::with_capacity(len);
                held.iter().for_each(|chunk| joined.extend_from_slice(chunk));
                Some(joined.freeze())
            }
        })
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;

    use super::*;
    use crate::core::testing::{cut, strict_body, strict_stream};

    fn reader(chunks: Vec<Bytes>, size: usize) -> PartReader {
        let pool = Arc::new(PartPool { size, keep: 2, free: Mutex::new(Vec::new()) });
        let stream = strict_stream(chunks.into_iter().map(Ok).collect());
        PartReader { stream, size, leftover: None, ended: false, pool }
    }

    #[tokio::test]
    async fn a_small_body_goes_out_as_it_came() {
        let body = Bytes::from(vec![7u8; 4096]);
        let limits = PartLimits { part_size: 8 << 20, concurrency: 4, max_parts: 10_000 };
        let Cut::Whole(part) = limits.cut(strict_body(vec![body.clone()], None)).await.unwrap() else {
            panic!("a 4 KiB body cut into parts");
        };
        assert_eq!(part.as_ptr(), body.as_ptr(), "copied into a part buffer");
    }

    #[tokio::test]
    async fn a_stated_length_that_needs_too_many_parts_gets_larger_ones() {
        let limits = PartLimits { part_size: 10, concurrency: 1, max_parts: 4 };
        let body = strict_body(cut(&[1u8; 100], vec![]), Some(100));
        let Cut::Parts(first, _) = limits.cut(body).await.unwrap() else { panic!("one part") };
        assert_eq!(first.len(), 25);
    }

    /// A store that records what the driver does, and fails where told.
    #[derive(Default)]
    struct Recorder {
        fail_part: Option<u32>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        parts: Mutex<Vec<(u32, usize)>>,
        completed: Mutex<Option<Vec<(u32, String)>>>,
        aborted: AtomicUsize,
    }

    #[async_trait]
    impl Parts for Recorder {
        async fn put_part(&self, number: u32, data: Bytes) -> Result<String> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.parts.lock().unwrap().push((number, data.len()));
            if self.fail_part == Some(number) {
                return Err(Error::Unavailable("injected".into()));
            }
            Ok(format!("id-{number}"))
        }

        async fn complete(&self, parts: Vec<(u32, String)>) -> Result<PutResult> {
            *self.completed.lock().unwrap() = Some(parts);
            Ok(PutResult::default())
        }

        async fn abort(&self) {
            self.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn drive(recorder: Arc<Recorder>, len: usize, size: usize, concurrency: usize) -> Result<PutResult> {
        let limits = PartLimits { part_size: size, concurrency, max_parts: 10_000 };
        match limits.cut(strict_body(cut(&vec![3u8; len], vec![len / 3, len / 2]), None)).await? {
            Cut::Whole(_) => panic!("{len} bytes fit one part of {size}"),
            Cut::Parts(first, rest) => send_parts(recorder, first, rest, concurrency).await,
        }
    }

    #[tokio::test]
    async fn parts_go_up_in_order_and_bounded_then_complete() {
        let recorder = Arc::new(Recorder::default());
        drive(Arc::clone(&recorder), 1000, 64, 3).await.unwrap();
        let completed = recorder.completed.lock().unwrap().clone().unwrap();
        assert_eq!(completed.len(), 16);
        assert!(completed.iter().enumerate().all(|(i, (n, id))| *n == i as u32 + 1 && *id == format!("id-{n}")));
        assert!(recorder.most_in_flight.load(Ordering::SeqCst) <= 3);
        assert_eq!(recorder.aborted.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_failed_part_aborts_the_upload_once_and_never_completes() {
        let recorder = Arc::new(Recorder { fail_part: Some(5), ..Default::default() });
        let failed = drive(Arc::clone(&recorder), 1000, 64, 2).await.unwrap_err();
        assert_eq!(failed.code(), "STORAGE_UNAVAILABLE");
        assert_eq!(recorder.aborted.load(Ordering::SeqCst), 1);
        assert!(recorder.completed.lock().unwrap().is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any body, cut anywhere, comes out as whole parts of exactly the part size and one
        /// shorter last part, bytes in order; part sizes on both sides of the point where a
        /// part buffer is taken.
        #[test]
        fn parts_are_cut_to_size(
            size in prop_oneof![1usize..64, (HELD_BEFORE_BUFFERING - 3)..(HELD_BEFORE_BUFFERING + 70_000)],
            len_in_parts in 0.0f64..3.5,
            cuts in proptest::collection::vec(0.0f64..1.0, 0..40),
        ) {
            let len = (size as f64 * len_in_parts) as usize;
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let points = cuts.iter().map(|c| (c * len as f64) as usize).collect();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let parts = runtime.block_on(async {
                let mut parts = reader(cut(&data, points), size);
                let mut out = Vec::new();
                while let Some(part) = parts.next_part().await.unwrap() {
                    out.push(part);
                }
                assert!(parts.at_end().await.unwrap());
                out
            });
            let (last, whole) = parts.split_last().map_or((None, &[][..]), |(l, w)| (Some(l), w));
            prop_assert!(whole.iter().all(|p| p.len() == size));
            prop_assert!(last.is_none_or(|p| !p.is_empty() && p.len() <= size));
            prop_assert_eq!(parts.concat(), data);
        }
    }
}
