//! Writing a body to a temp file on one blocking thread, then handing it to a commit on that
//! same thread: a small object costs one trip to the blocking pool, not two.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::root::{Root, TempFile};
use super::sidecar::FileIdentity;
use crate::core::body::Body;
use crate::core::error::{Error, Result};

/// Chunks queued for the writer thread.
const WRITE_QUEUE: usize = 8;
/// Start writeback every this many bytes, so the closing fsync has little left to flush.
const WRITEBACK_EVERY: usize = 8 << 20;

/// Streams `body` into a new temp file, fsyncs it on a durable store, and calls `commit` with
/// it. The writer thread owns the temp file: whatever ends the write (a failed body, a
/// dropped caller, a failed commit), the temp file goes with the thread, never after it.
pub async fn write_then_commit<T: Send + 'static>(
    root: Arc<Root>,
    mut body: Body,
    commit: impl FnOnce(&Root, &mut TempFile, FileIdentity) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (sender, receiver) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    // Set once the whole body arrived: a channel closed without it means the body failed or
    // the caller went away, and the temp file is dropped unsynced.
    let complete = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&complete);
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<T>> {
        let fail = |e: io::Error| Error::io("write a temp file", e);
        let mut temp = root.temp_file().map_err(fail)?;
        let Some(identity) = receive_into(&mut temp.file, receiver, &done, root.durable).map_err(fail)? else {
            return Ok(None);
        };
        commit(&root, &mut temp, identity).map(Some)
    });
    let mut failed = None;
    while let Some(chunk) = body.stream.next().await {
        match chunk {
            Ok(chunk) => {
                if sender.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    complete.store(failed.is_none(), Ordering::Release);
    drop(sender);
    // Waited for even when the body failed: the caller hears back once the temp file is gone.
    let written = writer.await.map_err(|e| Error::Internal(format!("the file writer failed: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    written?.ok_or_else(|| Error::io("write a temp file", io::Error::other("the writer stopped early")))
}

/// The writer thread's loop: `None` when the body ended early.
fn receive_into(
    file: &mut File,
    mut receiver: mpsc::Receiver<Bytes>,
    complete: &AtomicBool,
    durable: bool,
) -> io::Result<Option<FileIdentity>> {
    let mut unflushed = 0;
    while let Some(chunk) = receiver.blocking_recv() {
        file.write_all(&chunk)?;
        unflushed += chunk.len();
        if durable && unflushed >= WRITEBACK_EVERY {
            start_writeback(file);
            unflushed = 0;
        }
    }
    if !complete.load(Ordering::Acquire) {
        return Ok(None);
    }
    if durable {
        file.sync_all()?;
    }
    Ok(Some(FileIdentity::of(&rustix::fs::fstat(&*file)?)))
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; SYNC_FILE_RANGE_WRITE only starts writeback of dirty pages.
    unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}
