//! Open files as byte streams: the local store's downloads, and upload bodies the addon reads
//! from a file itself instead of taking them from JS chunk by chunk.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, RawFd};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use rustix::fs::OFlags;

use crate::core::body::{ByteStream, CHUNK_SIZE};
use crate::core::error::{Error, Result};

/// Runs blocking file work off the runtime's threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("a file task failed: {e}")))?
}

/// Where a file stream stops.
#[derive(Clone, Copy, Debug)]
pub enum ReadTo {
    /// Exactly this offset: a file that ends before it is an error (it shrank while read).
    Exactly(u64),
    /// This offset or the end of the file, whichever comes first (as `fs.createReadStream` reads).
    AtMost(u64),
}

/// A descriptor of our own for a file JS holds open, so that it stays open however JS closes
/// its own; `None` when it is not a regular file (a pipe, a socket) or not open for reading,
/// which only JS reads.
pub fn regular_file_of(fd: RawFd) -> Result<Option<File>> {
    if fd < 0 {
        return Err(Error::InvalidArgument(format!("{fd} is not a file descriptor")));
    }
    // SAFETY: only borrowed for the duplication, during the synchronous call that passed it,
    // while JS still holds it open; a stale number fails with EBADF.
    let file = File::from(unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().map_err(|e| Error::io("dup", e))?);
    let regular = file.metadata().map_err(|e| Error::io("stat", e))?.is_file();
    // Opened for writing only: JS reads it, and fails as Node does (EBADF).
    let readable =
        rustix::fs::fcntl_getfl(&file).map_err(|e| Error::io("fcntl", e.into()))? & OFlags::RWMODE != OFlags::WRONLY;
    Ok((regular && readable).then_some(file))
}

/// Streams a file from `start` in `CHUNK_SIZE` reads, each into a fresh buffer that becomes a
/// JS Buffer (or a part of an upload) without another copy. Dropping the stream closes the file.
pub fn read_file(file: File, start: u64, to: ReadTo) -> ByteStream {
    let end = match to {
        ReadTo::Exactly(end) | ReadTo::AtMost(end) => end,
    };
    stream::try_unfold((Some(file), start), move |(file, pos)| async move {
        let Some(mut file) = file.filter(|_| pos < end) else {
            return Ok(None);
        };
        let want = (end - pos).min(CHUNK_SIZE as u64);
        let (file, chunk) = blocking(move || {
            let mut chunk = Vec::with_capacity(want as usize);
            file.seek(SeekFrom::Start(pos))
                .and_then(|_| (&mut file).take(want).read_to_end(&mut chunk))
                .map_err(|e| Error::io("read", e))?;
            // A short read (a small file, the last chunk) keeps no more than it holds.
            if chunk.len() < chunk.capacity() / 2 {
                chunk.shrink_to_fit();
            }
            Ok((file, chunk))
        })
        .await?;
        match (chunk.is_empty(), to) {
            (false, _) => {}
            (true, ReadTo::AtMost(_)) => return Ok(None),
            (true, ReadTo::Exactly(_)) => {
                return Err(Error::io(
                    "read",
                    io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while being read"),
                ))
            }
        }
        let next = pos + chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), (Some(file), next))))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&data).unwrap();
        (file, data)
    }

    async fn read_all(stream: ByteStream) -> Result<Vec<u8>> {
        let chunks: Vec<Bytes> = stream.collect::<Vec<_>>().await.into_iter().collect::<Result<_>>()?;
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK_SIZE));
        Ok(chunks.concat())
    }

    #[test]
    fn duplicates_regular_files_only() {
        use std::os::fd::AsRawFd;
        let (file, _) = file_of(3);
        let own = regular_file_of(file.as_file().as_raw_fd()).unwrap().unwrap();
        assert_eq!(own.metadata().unwrap().len(), 3);
        let (reader, _writer) = io::pipe().unwrap();
        assert!(regular_file_of(reader.as_raw_fd()).unwrap().is_none());
        let write_only = std::fs::OpenOptions::new().append(true).open(file.path()).unwrap();
        assert!(regular_file_of(write_only.as_raw_fd()).unwrap().is_none());
        assert!(regular_file_of(-1).is_err());
    }

    #[tokio::test]
    async fn reads_spans_at_chunk_edges() {
        for len in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 3] {
            let (file, data) = file_of(len);
            for (start, end) in [(0, len), (1.min(len), len), (0, len / 2), (len / 3, len - len / 5)] {
                let to = ReadTo::Exactly(end as u64);
                let read = read_all(read_file(file.reopen().unwrap(), start as u64, to)).await.unwrap();
                assert_eq!(read, &data[start..end], "len {len}, span {start}..{end}");
            }
        }
    }

    #[tokio::test]
    async fn at_most_stops_at_the_end_of_the_file_and_exactly_fails_there() {
        let (file, data) = file_of(CHUNK_SIZE + 10);
        let past = (CHUNK_SIZE + 500) as u64;
        let read = read_all(read_file(file.reopen().unwrap(), 3, ReadTo::AtMost(past))).await.unwrap();
        assert_eq!(read, &data[3..]);
        let read = read_all(read_file(file.reopen().unwrap(), 0, ReadTo::AtMost(u64::MAX))).await.unwrap();
        assert_eq!(read, data);
        let err = read_all(read_file(file.reopen().unwrap(), 0, ReadTo::Exactly(past))).await.unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
