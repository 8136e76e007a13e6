//! Reading the short XML documents services answer with (errors, upload ids, listings), and
//! escaping what goes into the ones we send. Answers are read as text, never trusted: any
//! bytes give a value or none, never a panic.

/// The text of the first `<tag>…</tag>` (attributes allowed on the opening tag), unescaped.
pub fn text(body: &[u8], tag: &str) -> Option<String> {
    field(std::str::from_utf8(body).ok()?, tag)
}

/// `text` of a document already read as text (an element of a listing): no second UTF-8 check.
pub fn field(document: &str, tag: &str) -> Option<String> {
    elements(document, tag).next().map(unescape)
}

/// The inner text of each `<tag>…</tag>` in `document`, in order, still escaped. Elements of
/// the same name nested in one another are not supported (service documents have none).
pub fn elements<'a>(document: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let close = format!("</{tag}>");
    let mut rest = document;
    std::iter::from_fn(move || loop {
        let at = rest.find('<')?;
        rest = &rest[at + 1..];
        let Some(after) = rest.strip_prefix(tag) else { continue };
        if !matches!(after.as_bytes().first(), Some(b'>' | b' ' | b'/')) {
            continue;
        }
        let open_end = after.find('>')?;
        if after[..open_end].ends_with('/') {
            rest = &after[open_end + 1..];
            return Some("");
        }
        let inner = &after[open_end + 1..];
        let end = inner.find(&close)?;
        rest = &inner[end + close.len()..];
        return Some(&inner[..end]);
    })
}

pub fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let entity = rest.find(';').map(|end| (&rest[1..end], end));
        let decoded = entity.and_then(|(name, end)| {
            let c = match name {
                "quot" => '"',
                "apos" => '\'',
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                _ => {
                    let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => name.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_elements_come_out_unescaped() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>";
        assert_eq!(text(body, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(text(b"", "Code"), None);
        assert_eq!(text(b"<Code>unclosed", "Code"), None);
        assert_eq!(text(&[0xff, 0xfe], "Code"), None);
        let etag = b"<CompleteMultipartUploadResult><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>";
        assert_eq!(text(etag, "ETag").as_deref(), Some("\"3858f62230ac3c915f300c664312c11f-9\""));
        let listing = "<Blobs><Blob><Name Encoded=\"false\">a&amp;b</Name></Blob><BlobPrefix><Name>d/</Name></BlobPrefix><Blob><Name>c&#x2F;&#233;</Name></Blob></Blobs><NextMarker />";
        let names: Vec<String> = elements(listing, "Blob").filter_map(|b| text(b.as_bytes(), "Name")).collect();
        assert_eq!(names, ["a&b", "c/é"]);
        assert_eq!(elements(listing, "NextMarker").collect::<Vec<_>>(), [""]);
        assert_eq!(elements(listing, "BlobPrefix").count(), 1);
        assert_eq!(unescape("&bogus; &#xD800; &"), "&bogus; &#xD800; &");
        assert_eq!(unescape(&escape("<a href='x'>&\"</a>")), "<a href='x'>&\"</a>");
    }

    proptest::proptest! {
        /// Any bytes as an answer: a value or none, never a panic; any text survives escaping.
        #[test]
        fn any_answer_body_reads_safely(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), tag in "[A-Za-z]{1,8}") {
            let _ = text(&body, "Code");
            let wrapped = [b"<Code>".as_slice(), &body, b"</Code>"].concat();
            let _ = text(&wrapped, &tag);
            if let Ok(s) = std::str::from_utf8(&body) {
                let _ = elements(s, &tag).count();
                proptest::prop_assert_eq!(unescape(&escape(s)), s);
                if !s.contains("</Code>") {
                    proptest::prop_assert_eq!(text(&wrapped, "Code"), Some(unescape(s)));
                }
            }
        }
    }
}
