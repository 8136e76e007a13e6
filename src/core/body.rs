//! Bodies as streams of byte chunks, and the guards that check a body while it streams.

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, Fuse, StreamExt};

use crate::core::error::{Error, Result};

pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// Chunk size for streams a store produces: large, so each hop to JS carries a lot.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Streams an in-memory buffer in `CHUNK_SIZE` slices, without copying.
pub fn chunked(bytes: Bytes) -> ByteStream {
    let count = bytes.len().div_ceil(CHUNK_SIZE);
    stream::iter((0..count).map(move |i| Ok(bytes.slice(i * CHUNK_SIZE..((i + 1) * CHUNK_SIZE).min(bytes.len())))))
        .boxed()
}

/// Merges a stream's small chunks (network reads are often 8-16 KiB) into `CHUNK_SIZE` ones,
/// so each hop to JS carries a lot. `length` (what the stream should yield, when known) sizes
/// the buffers: a small object never costs a 1 MiB allocation, which the allocator would keep.
pub fn rechunk(stream: ByteStream, length: Option<u64>) -> ByteStream {
    let remaining = length.unwrap_or(u64::MAX);
    stream::try_unfold((stream, false, remaining), |(mut stream, ended, remaining)| async move {
        if ended {
            return Ok(None);
        }
        let mut buf = BytesMut::new();
        let want = remaining.min(CHUNK_SIZE as u64) as usize;
        while buf.len() < CHUNK_SIZE {
            match stream.next().await.transpose()? {
                Some(chunk) if buf.is_empty() && chunk.len() >= want => {
                    let left = remaining.saturating_sub(chunk.len() as u64);
                    return Ok(Some((chunk, (stream, false, left))));
                }
                Some(chunk) => {
                    if buf.capacity() == 0 {
                        buf.reserve(want.max(chunk.len()));
                    }
                    buf.extend_from_slice(&chunk);
                }
                None if buf.is_empty() => return Ok(None),
                // A short last chunk is handed over in a buffer its own size, not a larger one
                // that would stay allocated as long as JS holds the chunk.
                None if buf.len() < buf.capacity() / 2 => {
                    return Ok(Some((Bytes::copy_from_slice(&buf), (stream, true, 0))))
                }
                None => return Ok(Some((buf.freeze(), (stream, true, 0)))),
            }
        }
        let left = remaining.saturating_sub(buf.len() as u64);
        Ok(Some((buf.freeze(), (stream, false, left))))
    })
    .boxed()
}

/// An upload body: chunks plus, when the caller stated it, the total length.
pub struct Body {
    pub stream: ByteStream,
    pub length: Option<u64>,
}

impl Body {
    pub fn bytes(bytes: Bytes) -> Body {
        let length = Some(bytes.len() as u64);
        Body { stream: stream::once(async move { Ok(bytes) }).boxed(), length }
    }

    pub fn stream(stream: ByteStream, length: Option<u64>) -> Body {
        Body { stream, length }
    }

    /// Reads the whole body; for stores that hold objects in memory.
    pub async fn collect(mut self) -> Result<Bytes> {
        let mut buf = BytesMut::with_capacity(self.length.unwrap_or(0).min(64 << 20) as usize);
        while let Some(chunk) = self.stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

/// What an upload must satisfy; checked while the body streams, so a bad body fails
/// before the store commits anything.
#[derive(Clone, Debug, Default)]
pub struct UploadGuard {
    /// The declared length: the body must be exactly this long.
    pub expected_length: Option<u64>,
    /// A hard cap on the body size.
    pub max_bytes: Option<u64>,
    /// Allowed MIME types (`image/png`, `image/*`); the declared type and the sniffed
    /// content must both match.
    pub allowed_content_types: Option<Vec<String>>,
    pub content_type: Option<String>,
}

/// Enough leading bytes to recognise every format `infer` knows.
pub const SNIFF_BYTES: usize = 8192;

impl UploadGuard {
    /// Checks what can be checked before any byte is read, then wraps the body so the rest
    /// is checked as it streams.
    pub fn apply(self, body: Body) -> Result<Body> {
        let expected = match (self.expected_length, body.length) {
            (Some(a), Some(b)) if a != b => return Err(Error::LengthMismatch { expected: a, actual: b }),
            (a, b) => a.or(b),
        };
        if let (Some(limit), Some(len)) = (self.max_bytes, expected) {
            if len > limit {
                return Err(Error::TooLarge { limit });
            }
        }
        if let Some(allowed) = &self.allowed_content_types {
            let declared = self.content_type.as_deref().unwrap_or("");
            if !type_allowed(declared, allowed) {
                return Err(Error::InvalidFileType { provided: declared.to_owned(), allowed: allowed.clone() });
            }
        }
        let state = GuardState {
            // Fused: sniffing may reach the end of a short body, and a stream polled again
            // after its end may panic (`unfold` does).
            inner: body.stream.fuse(),
            seen: 0,
            expected,
            max_bytes: self.max_bytes,
            sniff_against: self.allowed_content_types,
            declared: self.content_type.unwrap_or_default(),
            finished: false,
        };
        Ok(Body::stream(stream::try_unfold(state, GuardState::next).boxed(), expected))
    }
}

struct GuardState {
    inner: Fuse<ByteStream>,
    seen: u64,
    expected: Option<u64>,
    max_bytes: Option<u64>,
    /// Set until the leading bytes have been sniffed.
    sniff_against: Option<Vec<String>>,
    /// The content type the caller gave.
    declared: String,
    finished: bool,
}

impl GuardState {
    async fn next(mut self) -> Result<Option<(Bytes, GuardState)>> {
        if self.finished {
            return Ok(None);
        }
        let chunk = match self.sniff_against.take() {
            Some(allowed) => self.sniff(&allowed).await?,
            None => self.inner.next().await.transpose()?,
        };
        let Some(chunk) = chunk else {
            self.finished = true;
            return match self.expected {
                Some(expected) if expected != self.seen => Err(Error::LengthMismatch { expected, actual: self.seen }),
                _ => Ok(None),
            };
        };
        self.seen += chunk.len() as u64;
        if let Some(expected) = self.expected.filter(|&e| self.seen > e) {
            return Err(Error::LengthMismatch { expected, actual: self.seen });
        }
        if let Some(limit) = self.max_bytes.filter(|&m| self.seen > m) {
            return Err(Error::TooLarge { limit });
        }
        Ok(Some((chunk, self)))
    }

    /// Gathers the leading bytes into one chunk and refuses content whose real type is not
    /// allowed, whatever type was declared.
    async fn sniff(&mut self, allowed: &[String]) -> Result<Option<Bytes>> {
        let mut head = BytesMut::new();
        while head.len() < SNIFF_BYTES {
            match self.inner.next().await.transpose()? {
                Some(chunk) if head.is_empty() && chunk.len() >= SNIFF_BYTES => {
                    head = BytesMut::from(chunk);
                }
                Some(chunk) => head.extend_from_slice(&chunk),
                None => break,
            }
        }
        let sniffed = sniffed_type(&head, &self.declared);
        if let Some(sniffed) = sniffed.filter(|t| !type_allowed(t, allowed)) {
            return Err(Error::InvalidFileType { provided: sniffed.to_owned(), allowed: allowed.to_vec() });
        }
        Ok((!head.is_empty()).then(|| head.freeze()))
    }
}

/// What a body is said to be when its leading bytes match no known signature.
pub(crate) const UNIDENTIFIED: &str = "application/octet-stream";

/// The type a body's leading bytes show; none when they tell nothing. A type known by its
/// signature (PDF, PNG, ZIP…) must carry it: an SVG or a script declared as a PDF is an
/// unidentified body. Types without a signature (text, JSON, SVG) are taken as declared.
pub(crate) fn sniffed_type(head: &[u8], declared: &str) -> Option<&'static str> {
    match infer::get(head) {
        Some(kind) => Some(kind.mime_type()),
        None => infer::is_mime_supported(&essence(declared)).then_some(UNIDENTIFIED),
    }
}

/// A content type without its parameters, in lower case.
fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// `image/png` matches `image/png`, `image/*` and `*/*`; parameters and case are ignored.
pub fn type_allowed(content_type: &str, allowed: &[String]) -> bool {
    let actual = essence(content_type);
    let Some((kind, _)) = actual.split_once('/') else {
        return false;
    };
    allowed
        .iter()
        .map(|a| essence(a))
        .any(|a| a == actual || a == "*/*" || a.strip_suffix("/*").is_some_and(|k| k == kind))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::core::testing::{cut, expected_failures, guarded_body, strict_body};

    fn chunks(parts: &[&'static [u8]]) -> Body {
        let items: Vec<Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        Body::stream(stream::iter(items).boxed(), None)
    }

    async fn run(guard: UploadGuard, body: Body) -> Result<Bytes> {
        guard.apply(body)?.collect().await
    }

    #[tokio::test]
    async fn exact_length_passes_and_wrong_lengths_fail() {
        let exact = UploadGuard { expected_length: Some(6), ..Default::default() };
        assert_eq!(run(exact.clone(), chunks(&[b"abc", b"def"])).await.unwrap(), "abcdef");
        let short = run(exact.clone(), chunks(&[b"abc"])).await.unwrap_err();
        assert!(matches!(short, Error::LengthMismatch { expected: 6, actual: 3 }));
        let long = run(exact, chunks(&[b"abc", b"defg"])).await.unwrap_err();
        assert!(matches!(long, Error::LengthMismatch { expected: 6, actual: 7 }));
        let declared = UploadGuard { expected_length: Some(2), ..Default::default() };
        assert!(matches!(declared.apply(Body::bytes(Bytes::from_static(b"abc"))), Err(Error::LengthMismatch { .. })));
    }

    #[tokio::test]
    async fn max_bytes_stops_the_stream() {
        let guard = UploadGuard { max_bytes: Some(4), ..Default::default() };
        let err = run(guard, chunks(&[b"abc", b"def"])).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 4 }));
    }

    #[tokio::test]
    async fn sniffing_refuses_a_renamed_executable() {
        let guard = UploadGuard {
            allowed_content_types: Some(vec!["image/*".into()]),
            content_type: Some("image/png".into()),
            ..Default::default()
        };
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
        elf.resize(128, 0);
        let elf: &'static [u8] = elf.leak();
        let err = run(guard.clone(), chunks(&[&elf[..10], &elf[10..]])).await.unwrap_err();
        assert!(matches!(err, Error::InvalidFileType { ref provided, .. } if provided.contains("executable")), "{err}");
        let png: &'static [u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(run(guard.clone(), chunks(&[png, b"x"])).await.unwrap().len(), png.len() + 1);
        let wrong_declared = UploadGuard { content_type: Some("text/html".into()), ..guard };
        assert!(matches!(wrong_declared.apply(chunks(&[png])), Err(Error::InvalidFileType { .. })));
    }

    #[tokio::test]
    async fn a_type_known_by_its_signature_must_carry_it() {
        let pdf_only = |declared: &str| UploadGuard {
            allowed_content_types: Some(vec!["application/pdf".into(), "application/json".into()]),
            content_type: Some(declared.into()),
            ..Default::default()
        };
        let svg: &'static [u8] = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
        let err = run(pdf_only("application/pdf"), chunks(&[svg])).await.unwrap_err();
        assert!(matches!(err, Error::InvalidFileType { ref provided, .. } if provided == UNIDENTIFIED), "{err}");
        assert!(run(pdf_only("Application/PDF; x=y"), chunks(&[])).await.is_err(), "an empty body is no PDF either");
        let pdf: &'static [u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj";
        assert_eq!(run(pdf_only("application/pdf"), chunks(&[&pdf[..3], &pdf[3..]])).await.unwrap(), pdf);
        // No signature to check: taken as declared.
        assert_eq!(run(pdf_only("application/json"), chunks(&[b"{}"])).await.unwrap(), "{}");
    }

    #[tokio::test]
    async fn rechunk_merges_small_chunks() {
        let small: Vec<Result<Bytes>> = (0..300).map(|_| Ok(Bytes::from(vec![1u8; 8192]))).collect();
        let sizes: Vec<usize> = rechunk(stream::iter(small).boxed(), None).map(|c| c.unwrap().len()).collect().await;
        assert_eq!(sizes, [CHUNK_SIZE, CHUNK_SIZE, 300 * 8192 - 2 * CHUNK_SIZE]);
        // A small object of known length is one chunk in a buffer its own size.
        let small: Vec<Result<Bytes>> = (0..3).map(|_| Ok(Bytes::from(vec![1u8; 1000]))).collect();
        let chunks: Vec<Bytes> = rechunk(stream::iter(small).boxed(), Some(3000)).map(|c| c.unwrap()).collect().await;
        assert_eq!(chunks.len(), 1);
        assert_eq!(Vec::from(chunks[0].clone()).capacity(), 3000);
    }

    #[test]
    fn type_patterns() {
        let allowed = vec!["image/*".to_string(), "application/pdf".to_string()];
        assert!(type_allowed("image/png", &allowed));
        assert!(type_allowed("Application/PDF; charset=binary", &allowed));
        assert!(!type_allowed("text/plain", &allowed));
        assert!(!type_allowed("", &allowed));
    }

    #[tokio::test]
    async fn sniffing_a_body_shorter_than_the_window_does_not_poll_past_its_end() {
        let guard = UploadGuard {
            allowed_content_types: Some(vec!["application/json".into()]),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        for size in [1, 2, SNIFF_BYTES - 1, SNIFF_BYTES, SNIFF_BYTES + 1] {
            let data = vec![b'{'; size];
            let body = strict_body(cut(&data, vec![size / 2]), None);
            assert_eq!(run(guard.clone(), body).await.unwrap().len(), size);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any body, cut anywhere, through any guard: the bytes come out whole, or the body
        /// fails with one of the errors that apply to it, never a panic or another error.
        #[test]
        fn guards_pass_whole_bodies_or_fail_typed(
            ((data, points), (guard, states_length)) in guarded_body()
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let expected = expected_failures(&data, &guard);
            let length = states_length.then_some(data.len() as u64);
            let outcome = runtime.block_on(run(guard, strict_body(cut(&data, points), length)));
            match outcome {
                Ok(stored) => prop_assert!(expected.is_empty() && stored == data, "expected {expected:?}"),
                Err(e) => prop_assert!(expected.contains(&e.code()), "{e} not in {expected:?}"),
            }
        }
    }
}
