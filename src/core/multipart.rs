//! Bodies too long for one request, sent in parts: the one bounded driver every store uses.
//! A store says how one part goes up, how the parts become the object, and how to give up;
//! the driver cuts the body, keeps at most `concurrency` parts in memory and in flight, and
//! gives up (aborts) on any failure, so a failed upload leaves no parts behind. Part buffers
//! take their share of the process-wide memory budget, and wait for it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::core::backend::PutResult;
use crate::core::body::{Body, ByteStream};
use crate::core::budget::{MemoryBudget, Reservation};
use crate::core::error::{Error, Result};

/// The first part of a body is held as its chunks up to this size before it gets a part
/// buffer, so that a small body goes out as it came; later parts take a buffer at once.
const HELD_BEFORE_BUFFERING: usize = 1 << 20;
/// The same while the budget has no buffer to spare: an upload waiting its turn for one holds
/// little outside the budget.
const HELD_WHILE_SHORT: usize = 256 << 10;

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
#[derive(Clone, Copy)]
pub struct PartLimits {
    pub part_size: usize,
    /// Parts in memory and in flight at once, as the budget allows.
    pub concurrency: usize,
    /// Parts one upload may have; a stated length that needs more gets larger parts.
    pub max_parts: u64,
    /// What the part buffers of all uploads may take together: `MemoryBudget::global()`.
    pub budget: &'static MemoryBudget,
}

/// A body after its first part was read: all of it, or the first of several parts.
pub enum Cut {
    Whole(Part),
    Parts(Part, PartReader),
}

/// Some of a body in memory. Read into a part buffer, it holds the buffer's share of the
/// budget until it is dropped: keep it until its request is done.
#[derive(Default)]
pub struct Part {
    pub data: Bytes,
    share: Option<Reservation>,
}

impl Part {
    /// Less than a part buffer's worth, held as it came: outside the budget, as a small body is.
    fn held(data: Bytes) -> Part {
        Part { data, share: None }
    }
}

impl PartLimits {
    /// Reads the first part of `body`; a body no longer than one part comes back whole.
    pub async fn cut(&self, body: Body) -> Result<Cut> {
        let size = match body.length {
            Some(len) => self.part_size.max(len.div_ceil(self.max_parts) as usize),
            None => self.part_size,
        };
        // A stated length shorter than a part needs (and takes from the budget) no more.
        let capacity = body.length.and_then(|len| usize::try_from(len).ok()).map_or(size, |len| size.min(len));
        let pool = Arc::new(PartPool::new(capacity, self.concurrency, self.budget));
        let mut reader = PartReader { stream: body.stream, size, leftover: None, ended: false, started: false, pool };
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
    first: Part,
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
    first: Part,
    reader: PartReader,
    concurrency: usize,
) -> Result<Vec<(u32, String)>> {
    let mut uploads = JoinSet::new();
    let sent = send_each(&mut uploads, upload, first, reader, concurrency).await;
    if sent.is_err() {
        // The parts still going up end, and free their buffers, before the upload is aborted:
        // a part that lands after the abort would be left behind.
        uploads.shutdown().await;
    }
    sent
}

async fn send_each(
    uploads: &mut JoinSet<Result<(u32, String)>>,
    upload: Arc<dyn Parts>,
    first: Part,
    mut reader: PartReader,
    concurrency: usize,
) -> Result<Vec<(u32, String)>> {
    let mut sent = Vec::new();
    let mut next = Some(first);
    let mut number = 1;
    while let Some(part) = next {
        let (upload, pool) = (Arc::clone(&upload), Arc::clone(&reader.pool));
        uploads.spawn(async move {
            let id = upload.put_part(number, part.data.clone()).await;
            pool.give(part);
            Ok((number, id?))
        });
        number += 1;
        // The next part is read only once one is done: at most `concurrency` in memory (fewer
        // when the budget runs short: then the reader waits for a buffer).
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

/// One upload's part buffers, each with its share of the budget, reused from part to part:
/// its memory stays at `concurrency` parts instead of churning (and fragmenting) the
/// allocator, and is freed when it ends.
struct PartPool {
    size: usize,
    keep: usize,
    budget: &'static MemoryBudget,
    shelf: Mutex<Shelf>,
    /// A buffer came back (or was freed).
    returned: Notify,
}

struct Shelf {
    free: Vec<(BytesMut, Reservation)>,
    /// Buffers off the shelf: being filled or in flight.
    lent: usize,
}

impl PartPool {
    fn new(size: usize, keep: usize, budget: &'static MemoryBudget) -> PartPool {
        PartPool { size, keep, budget, shelf: Mutex::new(Shelf { free: Vec::new(), lent: 0 }), returned: Notify::new() }
    }

    /// A buffer and its share. An upload that holds no buffer waits its turn for one; one that
    /// holds some takes another only if the budget has it to spare, else waits for one of its
    /// own to come back. So no upload waits on the others while it holds buffers, and each can
    /// always go on with one.
    async fn take(&self) -> Result<(BytesMut, Reservation)> {
        loop {
            // Before looking: a buffer given back after the look still wakes this wait.
            let returned = self.returned.notified();
            {
                let mut shelf = self.shelf();
                if let Some(buffer) = shelf.free.pop() {
                    shelf.lent += 1;
                    return Ok(buffer);
                }
                if shelf.lent == 0 {
                    break;
                }
                if let Some(share) = self.budget.try_reserve(self.size) {
                    shelf.lent += 1;
                    return Ok((BytesMut::with_capacity(self.size), share));
                }
            }
            returned.await;
        }
        let share = self.budget.reserve(self.size).await?;
        self.shelf().lent += 1;
        Ok((BytesMut::with_capacity(self.size), share))
    }

    /// Takes a part back once its request is done. Its buffer is kept for the next part unless
    /// other uploads wait for the budget: then it is freed, for them.
    fn give(&self, part: Part) {
        let Some(share) = part.share else { return };
        let mut shelf = self.shelf();
        shelf.lent -= 1;
        if shelf.free.len() < self.keep && self.budget.usage().waiting == 0 {
            if let Ok(mut buffer) = part.data.try_into_mut() {
                if buffer.capacity() >= self.size {
                    buffer.clear();
                    shelf.free.push((buffer, share));
                }
            }
        }
        self.returned.notify_one();
    }

    /// Whether a first buffer would have to wait for the budget.
    fn budget_short(&self) -> bool {
        let usage = self.budget.usage();
        usage.waiting > 0 || usage.limit.saturating_sub(usage.in_use) < self.size as u64
    }

    fn shelf(&self) -> MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Cuts a body into parts of exactly `size` bytes (the last may be shorter).
pub struct PartReader {
    stream: ByteStream,
    /// The pool's part size.
    size: usize,
    leftover: Option<Bytes>,
    ended: bool,
    /// A part has been read: the body is no small one.
    started: bool,
    pool: Arc<PartPool>,
}

impl PartReader {
    async fn next_part(&mut self) -> Result<Option<Part>> {
        // The first chunks are held as they come until there are enough to be worth a part
        // buffer: a small body is sent as it came, never copied into a buffer the size of a
        // part. Past the first part every byte read waits in a buffer of the budget's.
        let first = !std::mem::replace(&mut self.started, true);
        let mut held: Vec<Bytes> = Vec::new();
        let mut part: Option<(BytesMut, Reservation)> = None;
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
                Some((buffer, _)) => buffer.extend_from_slice(&chunk),
                None => held.push(chunk),
            }
            // Not for one chunk that is the whole stated body (a Buffer given whole): it is
            // sent as it came, without a copy or a share of the budget it would not use. A body
            // stated under HELD_BEFORE_BUFFERING never waits for the budget. The budget is
            // looked at last, and only while this part has no buffer.
            let whole_in_one = held.len() == 1 && len == self.pool.size;
            if part.is_none()
                && len < self.size
                && !whole_in_one
                && (!first
                    || len >= HELD_BEFORE_BUFFERING
                    || (len >= HELD_WHILE_SHORT && self.pool.size > HELD_BEFORE_BUFFERING && self.pool.budget_short()))
            {
                let (mut buffer, share) = self.pool.take().await?;
                held.drain(..).for_each(|chunk| buffer.extend_from_slice(&chunk));
                part = Some((buffer, share));
            }
        }
        Ok(match (part, held.len()) {
            (Some((buffer, share)), _) => Some(Part { data: buffer.freeze(), share: Some(share) }),
            (None, 0) => None,
            (None, 1) => held.pop().map(Part::held),
            (None, _) => {
                let mut joined = BytesMut::with_capacity(len);
                held.iter().for_each(|chunk| joined.extend_from_slice(chunk));
                Some(Part::held(joined.freeze()))
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
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::core::testing::{cut, strict_body, strict_stream};

    /// A budget of its own: tests run side by side, and the global one is shared.
    fn budget(bytes: u64) -> &'static MemoryBudget {
        Box::leak(Box::new(MemoryBudget::new(bytes)))
    }

    fn limits(part_size: usize, concurrency: usize, max_parts: u64) -> PartLimits {
        PartLimits { part_size, concurrency, max_parts, budget: budget(1 << 30) }
    }

    fn reader(chunks: Vec<Bytes>, size: usize) -> PartReader {
        let pool = Arc::new(PartPool::new(size, 2, budget(1 << 30)));
        let stream = strict_stream(chunks.into_iter().map(Ok).collect());
        PartReader { stream, size, leftover: None, ended: false, started: false, pool }
    }

    #[tokio::test]
    async fn a_small_body_goes_out_as_it_came() {
        let body = Bytes::from(vec![7u8; 4096]);
        let limits = limits(8 << 20, 4, 10_000);
        let Cut::Whole(part) = limits.cut(strict_body(vec![body.clone()], None)).await.unwrap() else {
            panic!("a 4 KiB body cut into parts");
        };
        assert_eq!(part.data.as_ptr(), body.as_ptr(), "copied into a part buffer");
        assert_eq!(limits.budget.usage().peak, 0, "took a share of the budget");
    }

    #[tokio::test]
    async fn a_stated_body_in_one_chunk_goes_out_as_it_came_and_a_longer_one_is_buffered() {
        let limits = limits(8 << 20, 4, 10_000);
        for len in [(1 << 20) + 1, 4 << 20, 8 << 20] {
            let body = Bytes::from(vec![5u8; len]);
            let Cut::Whole(part) = limits.cut(strict_body(vec![body.clone()], Some(len as u64))).await.unwrap() else {
                panic!("{len} bytes cut into parts of 8 MiB");
            };
            assert_eq!(part.data.as_ptr(), body.as_ptr(), "{len} bytes copied into a part buffer");
        }
        assert_eq!(limits.budget.usage().peak, 0, "took a share of the budget");
        // Stated longer than its first chunk: the rest is gathered into a buffer of the budget's.
        let len = 4 << 20;
        let chunks = vec![Bytes::from(vec![1u8; 2 << 20]), Bytes::from(vec![2u8; 2 << 20])];
        let Cut::Whole(part) = limits.cut(strict_body(chunks, Some(len as u64))).await.unwrap() else {
            panic!("4 MiB cut into parts of 8");
        };
        assert_eq!(part.data.len(), len);
        assert_eq!(limits.budget.usage().in_use, len as u64);
    }

    /// A stream of `count` chunks of `size` bytes that counts how many were taken.
    fn counted(count: usize, size: usize) -> (ByteStream, Arc<AtomicUsize>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&taken);
        let stream = futures::stream::iter(0..count)
            .map(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(vec![9u8; size]))
            })
            .boxed();
        (stream, taken)
    }

    #[tokio::test]
    async fn an_upload_waiting_for_the_budget_holds_little_outside_it() {
        const CHUNK: usize = 64 << 10;
        let limits = PartLimits { part_size: 2 << 20, concurrency: 2, max_parts: 10_000, budget: budget(2 << 20) };
        // Another upload holds the whole budget: this one's first part waits for it.
        let other = limits.budget.reserve(2 << 20).await.unwrap();
        let (stream, taken) = counted(64, CHUNK);
        let cutting = tokio::spawn(async move { limits.cut(Body::stream(stream, None)).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(taken.load(Ordering::SeqCst) * CHUNK, HELD_WHILE_SHORT, "read before it waited");
        drop(other);
        cutting.await.unwrap().unwrap();

        // A body stated under 1 MiB never waits, however short the budget.
        let limits = PartLimits { part_size: 2 << 20, concurrency: 2, max_parts: 10_000, budget: budget(2 << 20) };
        let _other = limits.budget.reserve(2 << 20).await.unwrap();
        let (stream, _) = counted(10, CHUNK);
        let small =
            tokio::time::timeout(Duration::from_secs(5), limits.cut(Body::stream(stream, Some(10 * CHUNK as u64))));
        assert!(matches!(small.await, Ok(Ok(Cut::Whole(_)))), "a 640 KiB body waited for the budget");

        // Once a part is read, the next waits for a buffer before it reads more than a chunk.
        let limits = PartLimits { part_size: 2 << 20, concurrency: 2, max_parts: 10_000, budget: budget(2 << 20) };
        let (stream, taken) = counted(96, CHUNK);
        let Cut::Parts(first, mut rest) = limits.cut(Body::stream(stream, None)).await.unwrap() else {
            panic!("6 MiB in one part of 2");
        };
        let pool = Arc::clone(&rest.pool);
        let reading = tokio::spawn(async move { rest.next_part().await.map(|part| part.map(|p| p.data.len())) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The first part and the chunk `cut` read to see more was coming, which the next part
        // starts with: it waits for a buffer before it reads another.
        assert_eq!(taken.load(Ordering::SeqCst), 32 + 1);
        pool.give(first);
        assert_eq!(reading.await.unwrap().unwrap(), Some(2 << 20));
    }

    #[tokio::test]
    async fn a_body_shorter_than_a_part_holds_a_share_for_its_length_until_sent() {
        let limits = limits(8 << 20, 4, 10_000);
        let len = 3 << 20;
        let Cut::Whole(part) =
            limits.cut(strict_body(cut(&vec![1u8; len], vec![1 << 19]), Some(len as u64))).await.unwrap()
        else {
            panic!("3 MiB cut into parts of 8");
        };
        assert_eq!(limits.budget.usage().in_use, len as u64);
        drop(part);
        assert_eq!(limits.budget.usage().in_use, 0);
    }

    #[tokio::test]
    async fn a_stated_length_that_needs_too_many_parts_gets_larger_ones() {
        let limits = limits(10, 1, 4);
        let body = strict_body(cut(&[1u8; 100], vec![]), Some(100));
        let Cut::Parts(first, _) = limits.cut(body).await.unwrap() else { panic!("one part") };
        assert_eq!(first.data.len(), 25);
    }

    /// A store that records what the driver does, and fails where told.
    #[derive(Default)]
    struct Recorder {
        fail_part: Option<u32>,
        /// Parts never finish: the upload can only be given up on.
        hang: bool,
        /// Bytes in flight, shared by the recorders of uploads that run side by side.
        bytes: Arc<Gauge>,
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
            let bytes = self.bytes.now.fetch_add(data.len(), Ordering::SeqCst) + data.len();
            self.bytes.most.fetch_max(bytes, Ordering::SeqCst);
            if self.hang {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            self.bytes.now.fetch_sub(data.len(), Ordering::SeqCst);
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

    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    async fn drive(recorder: Arc<Recorder>, len: usize, size: usize, concurrency: usize) -> Result<PutResult> {
        let body = strict_body(cut(&vec![3u8; len], vec![len / 3, len / 2]), None);
        drive_within(recorder, body, limits(size, concurrency, 10_000)).await
    }

    async fn drive_within(recorder: Arc<Recorder>, body: Body, limits: PartLimits) -> Result<PutResult> {
        match limits.cut(body).await? {
            Cut::Whole(_) => panic!("the body fits one part of {}", limits.part_size),
            Cut::Parts(first, rest) => send_parts(recorder, first, rest, limits.concurrency).await,
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

    const MIB: usize = 1 << 20;

    /// `len` bytes in chunks of 256 KiB, sliced from one buffer.
    fn chunked(data: &Bytes) -> Body {
        let chunks = (0..data.len()).step_by(MIB / 4).map(|at| data.slice(at..data.len().min(at + MIB / 4))).collect();
        strict_body(chunks, None)
    }

    fn nine_mib() -> Bytes {
        (0..9 * MIB).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into()
    }

    /// Parts of 2 MiB, four at once, within `budget` bytes.
    fn budgeted(budget_bytes: u64) -> PartLimits {
        PartLimits { part_size: 2 * MIB, concurrency: 4, max_parts: 10_000, budget: budget(budget_bytes) }
    }

    #[tokio::test]
    async fn the_budget_is_given_back_when_an_upload_completes() {
        let (recorder, limits) = (Arc::new(Recorder::default()), budgeted(5 * MIB as u64));
        drive_within(Arc::clone(&recorder), chunked(&nine_mib()), limits).await.unwrap();
        assert_eq!(recorder.completed.lock().unwrap().as_ref().map(Vec::len), Some(5));
        let usage = limits.budget.usage();
        assert_eq!((usage.in_use, usage.waiting), (0, 0));
        assert!(usage.peak > 0 && usage.peak <= usage.limit, "{usage:?}");
    }

    #[tokio::test]
    async fn the_budget_is_given_back_when_a_part_fails() {
        let recorder = Arc::new(Recorder { fail_part: Some(3), ..Default::default() });
        let limits = budgeted(5 * MIB as u64);
        assert!(drive_within(Arc::clone(&recorder), chunked(&nine_mib()), limits).await.is_err());
        assert_eq!(recorder.aborted.load(Ordering::SeqCst), 1);
        assert_eq!(limits.budget.usage().in_use, 0);
    }

    #[tokio::test]
    async fn the_budget_is_given_back_when_the_body_fails_mid_way() {
        let (recorder, limits) = (Arc::new(Recorder::default()), budgeted(5 * MIB as u64));
        let data = nine_mib();
        let mut chunks: Vec<Result<Bytes>> = (0..20).map(|i| Ok(data.slice(i * MIB / 4..(i + 1) * MIB / 4))).collect();
        chunks.push(Err(Error::Aborted("the client went away".into())));
        let body = Body::stream(strict_stream(chunks), None);
        let failed = drive_within(Arc::clone(&recorder), body, limits).await.unwrap_err();
        assert_eq!(failed.code(), "ABORTED");
        assert_eq!(recorder.aborted.load(Ordering::SeqCst), 1);
        assert_eq!(limits.budget.usage().in_use, 0);
    }

    #[tokio::test]
    async fn the_budget_is_given_back_when_an_upload_is_dropped_mid_flight() {
        let recorder = Arc::new(Recorder { hang: true, ..Default::default() });
        let limits = budgeted(5 * MIB as u64);
        let upload = tokio::spawn(drive_within(Arc::clone(&recorder), chunked(&nine_mib()), limits));
        while recorder.in_flight.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(limits.budget.usage().in_use, 4 * MIB as u64);
        upload.abort();
        assert!(upload.await.unwrap_err().is_cancelled());
        // The parts' tasks end as the runtime gets to them.
        for _ in 0..1000 {
            if limits.budget.usage().in_use == 0 && recorder.aborted.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(limits.budget.usage().in_use, 0);
        assert_eq!(recorder.aborted.load(Ordering::SeqCst), 1);
    }

    /// Twenty uploads of five parts, four at once each, within budgets of less than one part
    /// up to more than they all need: all complete, and their buffers never take more than
    /// the budget (or, below one part, one part).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn uploads_side_by_side_stay_within_the_budget_and_all_complete() {
        let data = nine_mib();
        for budget_bytes in [MIB, 2 * MIB, 5 * MIB, 64 * MIB] {
            let (limits, bytes) = (budgeted(budget_bytes as u64), Arc::new(Gauge::default()));
            let recorders: Vec<_> =
                (0..20).map(|_| Arc::new(Recorder { bytes: Arc::clone(&bytes), ..Default::default() })).collect();
            let uploads = recorders
                .iter()
                .map(|recorder| tokio::spawn(drive_within(Arc::clone(recorder), chunked(&data), limits)));
            let all = futures::future::join_all(uploads);
            let done =
                tokio::time::timeout(std::time::Duration::from_secs(120), all).await.expect("uploads deadlocked");
            assert!(done.into_iter().all(|upload| upload.is_ok_and(|put| put.is_ok())));
            for recorder in &recorders {
                let parts = recorder.parts.lock().unwrap();
                assert_eq!(parts.iter().map(|(_, len)| len).sum::<usize>(), data.len());
                assert_eq!(recorder.completed.lock().unwrap().as_ref().map(Vec::len), Some(5));
            }
            let usage = limits.budget.usage();
            assert_eq!((usage.in_use, usage.waiting), (0, 0));
            assert!(usage.peak <= usage.limit, "{usage:?}");
            let most = bytes.most.load(Ordering::SeqCst);
            assert!(most <= budget_bytes.max(2 * MIB), "{most} bytes in flight within {budget_bytes}");
        }
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
                    out.push(part.data);
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
