//! Reading what every HTTP answer carries: Content-Range, HTTP dates.

use std::time::SystemTime;

use aws_smithy_types::date_time::{DateTime, Format};

use crate::core::backend::ByteRange;
use crate::core::error::{Error, Result};

/// What a successful or 416 answer to a (ranged) GET carries of the object.
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// All of it.
    Whole,
    /// `[start, end)` of an object of `size` bytes.
    Span((u64, u64), u64),
    /// Nothing: the range starts at or past the end (a 416, with the size when it says it; or
    /// Azurite's empty span, "bytes 20-19/20"). The range is then checked against the size:
    /// an empty object still serves `start: 0`.
    Unsatisfiable(Option<u64>),
}

/// Whether a GET answer carries (part of) the object, or says a range is beyond it: any other
/// answer is the store's error to read.
pub fn answers_get(status: u16, range: Option<ByteRange>) -> bool {
    (200..300).contains(&status) || status == 416 && range.is_some()
}

/// Reads a GET answer's status and Content-Range; `service` and `operation` name a
/// Content-Range that is no range.
pub fn served(
    status: u16,
    content_range: Option<&str>,
    range: Option<ByteRange>,
    service: &str,
    operation: &str,
) -> Result<Served> {
    let ranged = range.is_some();
    if status == 416 && ranged {
        return Ok(Served::Unsatisfiable(content_range.and_then(content_range_size)));
    }
    let Some(header) = content_range else { return Ok(Served::Whole) };
    match (parse_content_range(header), content_range_size(header)) {
        (Some((span, size)), _) => Ok(Served::Span(span, size)),
        (None, Some(size)) if ranged => Ok(Served::Unsatisfiable(Some(size))),
        _ => Err(Error::Service {
            status,
            message: format!("{service} answered {operation} with a Content-Range that is no range: {header:?}"),
        }),
    }
}

/// `bytes a-b/size` → ((a, b + 1), size).
/// `None` for anything that is not a range inside the object.
pub fn parse_content_range(header: &str) -> Option<((u64, u64), u64)> {
    let (span, size) = header.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, size) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?, size.parse::<u64>().ok()?);
    (a <= b && b < size).then(|| ((a, b + 1), size))
}

/// The object size a Content-Range states (`bytes a-b/size`, `bytes */size`), whatever its span.
pub fn content_range_size(header: &str) -> Option<u64> {
    header.strip_prefix("bytes ")?.split_once('/')?.1.parse().ok()
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); the epoch for what is none.
pub fn http_date(value: Option<&str>) -> SystemTime {
    value.and_then(|v| DateTime::from_str(v, Format::HttpDate).ok()).map_or(SystemTime::UNIX_EPOCH, system_time)
}

/// An RFC 3339 time (`2024-01-31T12:00:00.123Z`); the epoch for what is none.
pub fn rfc3339(value: Option<&str>) -> SystemTime {
    value.and_then(|v| DateTime::from_str(v, Format::DateTime).ok()).map_or(SystemTime::UNIX_EPOCH, system_time)
}

pub fn system_time(t: DateTime) -> SystemTime {
    SystemTime::try_from(t).unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::strategy::Strategy;

    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some(((0, 10), 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(content_range_size("bytes 20-19/20"), Some(20));
        assert_eq!(content_range_size("bytes */7"), Some(7));
        assert_eq!(content_range_size("bytes 1-2/x"), None);
        for nonsense in
            ["bytes 9-2/100", "bytes 0-100/100", "bytes 0-18446744073709551615/5", "bytes 1-2/x", "bits 1-2/3"]
        {
            assert_eq!(parse_content_range(nonsense), None, "{nonsense}");
        }
    }

    #[test]
    fn answers_to_ranged_gets_say_what_they_carry() {
        let range = Some(ByteRange { start: 20, end: None });
        assert_eq!(served(200, None, None, "S", "Get").unwrap(), Served::Whole);
        assert_eq!(served(206, Some("bytes 0-9/20"), range, "S", "Get").unwrap(), Served::Span((0, 10), 20));
        assert_eq!(served(416, None, range, "S", "Get").unwrap(), Served::Unsatisfiable(None));
        assert_eq!(served(416, Some("bytes */20"), range, "S", "Get").unwrap(), Served::Unsatisfiable(Some(20)));
        assert_eq!(served(206, Some("bytes 20-19/20"), range, "S", "Get").unwrap(), Served::Unsatisfiable(Some(20)));
        assert_eq!(served(200, Some("bytes 20-19/20"), None, "S", "Get").unwrap_err().code(), "STORAGE_ERROR");
        assert_eq!(served(206, Some("nonsense"), range, "S", "Get").unwrap_err().code(), "STORAGE_ERROR");
    }

    #[test]
    fn dates_parse_or_fall_back_to_the_epoch() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(Some("Sun, 06 Nov 1994 08:49:37 GMT")), t);
        assert_eq!(rfc3339(Some("1994-11-06T08:49:37Z")), t);
        assert_eq!(rfc3339(Some("1994-11-06T08:49:37.500Z")), t + Duration::from_millis(500));
        for nonsense in [None, Some(""), Some("yesterday"), Some("Sun, 99 Nov 1994 08:49:37 GMT")] {
            assert_eq!(http_date(nonsense), SystemTime::UNIX_EPOCH);
            assert_eq!(rfc3339(nonsense), SystemTime::UNIX_EPOCH);
        }
    }

    proptest::proptest! {
        /// Whatever a server sends as Content-Range, the answer is a range inside the object or none.
        #[test]
        fn any_content_range_is_a_range_inside_the_object_or_none(
            header in proptest::prop_oneof![
                "\\PC{0,40}",
                (proptest::prelude::any::<u64>(), proptest::prelude::any::<u64>(), proptest::prelude::any::<u64>())
                    .prop_map(|(a, b, n)| format!("bytes {a}-{b}/{n}")),
                (0u64..50, 0u64..50, 0u64..50).prop_map(|(a, b, n)| format!("bytes {a}-{b}/{n}")),
            ]
        ) {
            if let Some(((start, end), size)) = parse_content_range(&header) {
                proptest::prop_assert!(start < end && end <= size);
            }
        }
    }
}
