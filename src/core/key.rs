//! Object keys: one validator for every backend, applied before any I/O.

use std::fmt;

use crate::core::error::{Error, Result};

/// Keys longer than this (in UTF-8 bytes) are refused, as S3 does.
pub const MAX_KEY_BYTES: usize = 1024;

/// Where resumable uploads keep their state and bytes in the store; no caller's key.
pub const RESUMABLE_PREFIX: &str = ".resumable-uploads/";

/// A validated object key: relative, `/`-separated, no empty, `.` or `..` segments,
/// no backslashes, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// A caller's key: well formed, and not one the package keeps for itself.
    pub fn parse(key: impl Into<String>) -> Result<Key> {
        let key = key.into();
        check(&key, false)?;
        check_not_reserved(&key)?;
        Ok(Key(key))
    }

    /// Whether a name a store found could have been stored under (reserved ones included).
    pub fn is_well_formed(key: &str) -> bool {
        check(key, false).is_ok()
    }

    /// A key the store listed itself: it exists, so bulk operations act on it even when the
    /// validator would refuse it (an S3 folder marker `dir/` made by another tool).
    pub fn listed(key: String) -> Key {
        Key(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a listing prefix: like a key, but it may be empty or end with `/`.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    check(prefix, true)?;
    check_not_reserved(prefix)
}

fn check_not_reserved(key: &str) -> Result<()> {
    if key.starts_with(RESUMABLE_PREFIX) || key == &RESUMABLE_PREFIX[..RESUMABLE_PREFIX.len() - 1] {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: "keys under .resumable-uploads/ are reserved for resumable uploads",
        });
    }
    Ok(())
}

fn check(key: &str, is_prefix: bool) -> Result<()> {
    let refuse = |reason| Err(Error::InvalidKey { key: key.to_owned(), reason });
    if key.is_empty() {
        return refuse("a key must not be empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return refuse("a key must be at most 1024 bytes");
    }
    if key.starts_with('/') {
        return refuse("a key must be relative, not start with '/'");
    }
    if key.contains('\\') {
        return refuse("a key must not contain backslashes");
    }
    if key.chars().any(char::is_control) {
        return refuse("a key must not contain NUL or control characters");
    }
    let mut segments: Vec<&str> = key.split('/').collect();
    if is_prefix && segments.len() > 1 && segments.last() == Some(&"") {
        segments.pop();
    }
    for segment in segments {
        match segment {
            "" => return refuse("a key must not contain empty segments ('//' or a trailing '/')"),
            "." | ".." => return refuse("a key must not contain '.' or '..' segments"),
            _ => {}
        }
    }
    Ok(())
}

/// Percent-encodes each path segment, keeping the `/` separators (URLs, S3 copy sources).
pub fn percent_encode_path(key: &str) -> String {
    key.split('/').map(encode_component).collect::<Vec<_>>().join("/")
}

/// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` is escaped.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `prefix/YYYY/MM/<uuid>.<ext>`: spreads keys over time-based folders, keeps the extension.
pub fn generate_key(prefix: &str, filename: Option<&str>, now: std::time::SystemTime) -> Result<Key> {
    let (year, month) = year_month(now);
    let ext = filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.is_empty() && ext.len() <= 16 && ext.chars().all(|c| c.is_ascii_alphanumeric()));
    let prefix = prefix.trim_end_matches('/');
    let mut key = String::new();
    if !prefix.is_empty() {
        key.push_str(prefix);
        key.push('/');
    }
    key.push_str(&format!("{year:04}/{month:02}/{}", uuid::Uuid::new_v4()));
    if let Some(ext) = ext {
        key.push('.');
        key.push_str(&ext);
    }
    Key::parse(key)
}

/// Civil (UTC) year and month of a time, without a calendar crate (Howard Hinnant's algorithm).
fn year_month(t: std::time::SystemTime) -> (i64, u32) {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in ["a", "a/b/c.txt", "with space/+plus%25/ünï😀", ".hidden", "a..b", "x/.y"] {
            assert!(Key::parse(k).is_ok(), "{k}");
        }
    }

    #[test]
    fn refuses_every_bad_key() {
        let long = "a".repeat(MAX_KEY_BYTES + 1);
        for k in ["", "/abs", "a/../b", "..", "a/./b", "a//b", "a/", "a\\b", "a\0b", "a\nb", "a\x7fb", &long] {
            let err = Key::parse(k).unwrap_err();
            assert_eq!(err.code(), "INVALID_KEY", "{k:?}");
        }
        assert!(Key::parse("a".repeat(MAX_KEY_BYTES)).is_ok());
    }

    #[test]
    fn prefixes_may_be_empty_or_end_with_a_slash() {
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("a/b/").is_ok());
        assert!(check_prefix("a/b").is_ok());
        assert!(check_prefix("../").is_err());
        assert!(check_prefix("/").is_err());
    }

    #[test]
    fn generated_keys_are_dated_and_keep_the_extension() {
        // 2024-02-29T12:00:00Z
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_709_208_000);
        let key = generate_key("uploads/", Some("Report.PDF"), t).unwrap();
        let s = key.as_str();
        assert!(s.starts_with("uploads/2024/02/"), "{s}");
        assert!(s.ends_with(".pdf"), "{s}");
        assert_eq!(s.len(), "uploads/2024/02/".len() + 36 + 4);
        let bare = generate_key("", None, t).unwrap();
        assert_eq!(bare.as_str().len(), "2024/02/".len() + 36);
    }

    proptest::proptest! {
        /// Any text is a key or an InvalidKey error, and what is accepted holds the rules.
        #[test]
        fn any_text_is_a_valid_key_or_a_typed_refusal(text in "(\\PC|[/\\\\.\\x00-\\x1f]){0,40}") {
            match Key::parse(text.clone()) {
                Ok(key) => {
                    let k = key.as_str();
                    proptest::prop_assert!(!k.is_empty() && k.len() <= MAX_KEY_BYTES && !k.starts_with('/'));
                    proptest::prop_assert!(!k.contains('\\') && !k.chars().any(char::is_control));
                    proptest::prop_assert!(k.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
                }
                Err(e) => proptest::prop_assert_eq!(e.code(), "INVALID_KEY"),
            }
            let _ = check_prefix(&text);
        }
    }
}
