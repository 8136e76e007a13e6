//! Turns a sorted run of entries into one listing page (prefix, delimiter, cursor, limit),
//! for stores that enumerate their own objects.

use crate::core::backend::{ListEntry, ListOptions, ListPage, DEFAULT_LIST_LIMIT};
use crate::core::error::{Error, Result};

/// Marks a cursor as one of ours: a key or a stray string is never mistaken for one.
const CURSOR_TAG: &[u8] = b"rsc1:";

/// A store's own cursor (a key, an S3 token) as the opaque string callers pass back: the same
/// rule on every store, and URL-safe.
pub fn encode_cursor(cursor: &str) -> String {
    hex::encode([CURSOR_TAG, cursor.as_bytes()].concat())
}

/// The store's cursor inside one `encode_cursor` made.
pub fn decode_cursor(cursor: &str) -> Result<String> {
    let refuse = || Error::InvalidArgument("cursor must be one returned by a previous list call".into());
    let bytes = hex::decode(cursor).map_err(|_| refuse())?;
    let inner = bytes.strip_prefix(CURSOR_TAG).ok_or_else(refuse)?;
    String::from_utf8(inner.to_vec()).map_err(|_| refuse())
}

/// `entries` must be sorted by key. Common prefixes count toward the limit, as in S3.
pub fn paginate(entries: impl IntoIterator<Item = ListEntry>, options: &ListOptions) -> ListPage {
    let limit = options.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    let mut page = ListPage::default();
    let mut last_item: Option<String> = None;
    let mut taken = 0;
    for entry in entries {
        let Some(rest) = entry.key.strip_prefix(options.prefix.as_str()) else {
            continue;
        };
        let common = options
            .delimiter
            .as_deref()
            .and_then(|d| rest.find(d).map(|i| format!("{}{}", options.prefix, &rest[..i + d.len()])));
        let item = common.as_deref().unwrap_or(&entry.key);
        if options.cursor.as_deref().is_some_and(|c| item <= c) || last_item.as_deref() == Some(item) {
            continue;
        }
        if taken == limit {
            page.cursor = last_item;
            return page;
        }
        taken += 1;
        last_item = Some(item.to_owned());
        match common {
            Some(prefix) => page.prefixes.push(prefix),
            None => page.objects.push(entry),
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entries(keys: &[&str]) -> Vec<ListEntry> {
        keys.iter().map(|k| ListEntry { key: k.to_string(), size: 1, last_modified: UNIX_EPOCH, etag: None }).collect()
    }

    fn keys(page: &ListPage) -> Vec<&str> {
        page.objects.iter().map(|o| o.key.as_str()).collect()
    }

    #[test]
    fn pages_follow_the_cursor() {
        let all = entries(&["a", "b", "c", "d", "e"]);
        let mut options = ListOptions { limit: Some(2), ..Default::default() };
        let mut seen = Vec::new();
        loop {
            let page = paginate(all.clone(), &options);
            seen.extend(keys(&page).into_iter().map(String::from));
            match page.cursor {
                Some(c) => options.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        let exact = paginate(entries(&["a", "b"]), &ListOptions { limit: Some(2), ..Default::default() });
        assert_eq!(exact.cursor, None);
    }

    #[test]
    fn cursors_round_trip_and_nothing_else_passes_for_one() {
        for inner in ["", "a/b/c.txt", "ünï😀", "AQID+token/=="] {
            assert_eq!(decode_cursor(&encode_cursor(inner)).unwrap(), inner);
        }
        for stray in ["a/b/c.txt", "abc", "", "zz", &hex::encode("a/b"), &hex::encode(b"rsc1:\xff")] {
            assert_eq!(decode_cursor(stray).unwrap_err().code(), "INVALID_ARGUMENT", "{stray:?}");
        }
    }

    #[test]
    fn delimiter_groups_common_prefixes() {
        let all = entries(&["p/a", "p/d1/x", "p/d1/y", "p/d2/z", "p/z", "q"]);
        let options = ListOptions { prefix: "p/".into(), delimiter: Some("/".into()), ..Default::default() };
        let page = paginate(all.clone(), &options);
        assert_eq!(keys(&page), ["p/a", "p/z"]);
        assert_eq!(page.prefixes, ["p/d1/", "p/d2/"]);
        let first = paginate(all.clone(), &ListOptions { limit: Some(2), ..options.clone() });
        assert_eq!((keys(&first), first.prefixes.clone()), (vec!["p/a"], vec!["p/d1/".to_string()]));
        let rest = paginate(all, &ListOptions { cursor: first.cursor, ..options });
        assert_eq!((keys(&rest), rest.prefixes.clone()), (vec!["p/z"], vec!["p/d2/".to_string()]));
    }
}
