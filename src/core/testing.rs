//! Test helpers shared by the core's and the stores' tests: bodies cut into arbitrary chunks,
//! delivered the way the binding delivers them.

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use proptest::prelude::*;

use crate::core::body::{sniffed_type, type_allowed, Body, ByteStream, UploadGuard, SNIFF_BYTES};
use crate::core::error::Result;

/// A stream that panics when polled after its end, as `futures::stream::unfold` does (the
/// binding's upload channel is one): a consumer that polls past the end fails loudly here.
pub fn strict_stream(chunks: Vec<Result<Bytes>>) -> ByteStream {
    stream::unfold(chunks.into_iter(), |mut rest| async move { rest.next().map(|item| (item, rest)) }).boxed()
}

/// `data` cut at the given points (sorted, deduplicated, within bounds; repeats make empty chunks).
pub fn cut(data: &[u8], mut points: Vec<usize>) -> Vec<Bytes> {
    points.retain(|&p| p <= data.len());
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut start = 0;
    for point in points {
        chunks.push(Bytes::copy_from_slice(&data[start..point]));
        start = point;
    }
    chunks.push(Bytes::copy_from_slice(&data[start..]));
    chunks
}

pub fn strict_body(chunks: Vec<Bytes>, length: Option<u64>) -> Body {
    Body::stream(strict_stream(chunks.into_iter().map(Ok).collect()), length)
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";

/// Bodies around the sizes where the last round's defects hid (0, 1, the sniffing window and
/// either side of it, a chunk and either side), some starting with a recognisable header.
pub fn body() -> impl Strategy<Value = Vec<u8>> {
    let size =
        prop_oneof![Just(0usize), Just(1), 8190usize..=8193, 0usize..20_000, (1usize << 16) - 1..=(1 << 16) + 1,];
    (size, prop_oneof![Just(None), Just(Some(PNG)), Just(Some(ELF))], any::<u8>()).prop_map(|(size, header, fill)| {
        let mut data = vec![fill; size];
        if let Some(header) = header {
            let n = header.len().min(size);
            data[..n].copy_from_slice(&header[..n]);
        }
        data
    })
}

/// A body with cut points for it (including empty chunks).
pub fn chunked_body() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    body().prop_flat_map(|data| {
        let len = data.len();
        (Just(data), proptest::collection::vec(0..=len, 0..12))
    })
}

/// Which failures a body may meet under a guard: none means it must be stored whole.
pub fn expected_failures(data: &[u8], guard: &UploadGuard) -> Vec<&'static str> {
    let mut codes = Vec::new();
    let len = data.len() as u64;
    if guard.expected_length.is_some_and(|e| e != len) {
        codes.push("CONTENT_LENGTH_MISMATCH");
    }
    // A stated length over the cap is refused before any byte is read.
    if guard.max_bytes.is_some_and(|m| len.max(guard.expected_length.unwrap_or(0)) > m) {
        codes.push("FILE_TOO_LARGE");
    }
    if let Some(allowed) = &guard.allowed_content_types {
        let declared = type_allowed(guard.content_type.as_deref().unwrap_or(""), allowed);
        let sniffed = sniffed_type(&data[..data.len().min(SNIFF_BYTES)], guard.content_type.as_deref().unwrap_or(""));
        if !declared || sniffed.is_some_and(|t| !type_allowed(t, allowed)) {
            codes.push("INVALID_FILE_TYPE");
        }
    }
    codes
}

/// A guard for a body of `len` bytes: lengths and caps either side of it, type rules that a
/// PNG or an ELF header does or does not pass; and whether the body states its length.
pub fn guard_for(len: u64) -> impl Strategy<Value = (UploadGuard, bool)> {
    let offset = |n: u64, d: i64| n.saturating_add_signed(d);
    (
        prop_oneof![Just(None), (-1i64..=1).prop_map(move |d| Some(offset(len, d)))],
        prop_oneof![
            Just(None),
            prop_oneof![Just(-1i64), Just(0), Just(1 << 20)].prop_map(move |d| Some(offset(len, d)))
        ],
        prop_oneof![
            Just(None),
            Just(Some(vec!["image/*".to_string()])),
            Just(Some(vec!["*/*".to_string()])),
            Just(Some(vec!["application/octet-stream".to_string()])),
        ],
        prop_oneof![Just("image/png"), Just("application/octet-stream")],
        any::<bool>(),
    )
        .prop_map(|(expected_length, max_bytes, allowed_content_types, declared, states_length)| {
            let content_type = Some(declared.to_string());
            (UploadGuard { expected_length, max_bytes, allowed_content_types, content_type }, states_length)
        })
}

/// A body, its cut points, and a guard for it.
pub fn guarded_body() -> impl Strategy<Value = ((Vec<u8>, Vec<usize>), (UploadGuard, bool))> {
    chunked_body().prop_flat_map(|(data, points)| {
        let len = data.len() as u64;
        (Just((data, points)), guard_for(len))
    })
}
