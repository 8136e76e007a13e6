//! Test helpers shared by the core's and the stores' tests: bodies cut into arbitrary chunks,
//! delivered the way the binding delivers them.

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use proptest::prelude::*;

use crate::core::body::{Body, ByteStream};
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
