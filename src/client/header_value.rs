//! Metadata values as HTTP header values. A header carries ASCII and loses leading and trailing
//! white space (and signers fold runs of it), so any other value travels as an RFC 2047 encoded word (`=?UTF-8?B?…?=`), the
//! form S3 itself gives non-ASCII metadata; read back, it is decoded. A value that merely looks
//! like an encoded word is encoded too, so reading back is never ambiguous.

use aws_smithy_types::base64;

const PREFIX: &str = "=?UTF-8?B?";
const SUFFIX: &str = "?=";

/// The header value that carries `value` unchanged through HTTP.
pub fn encode(value: &str) -> String {
    // Signers and proxies may fold runs of white space and tabs: those travel encoded too.
    let plain = value.bytes().all(|b| (b' '..=b'~').contains(&b))
        && value.trim() == value
        && !value.contains("  ")
        && !value.starts_with("=?");
    if plain {
        value.to_owned()
    } else {
        format!("{PREFIX}{}{SUFFIX}", base64::encode(value))
    }
}

/// The value a header carries: an encoded word decoded, anything else as it is.
pub fn decode(header: &str) -> String {
    header
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .and_then(|encoded| base64::decode(encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| header.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_http_would_change_travel_encoded() {
        for (value, plain) in [
            ("owner-1", true),
            ("a b c", true),
            ("a\tb", false),
            ("a  b", false),
            ("", true),
            ("café", false),
            ("日本", false),
            (" lead", false),
            ("trail ", false),
            ("=?UTF-8?B?eA==?=", false),
        ] {
            let header = encode(value);
            assert_eq!(header == value, plain, "{value:?} -> {header:?}");
            assert!(header.bytes().all(|b| (b' '..=b'~').contains(&b)), "{header:?}");
            assert_eq!(decode(&header), value);
        }
        // What other clients wrote is read as it is, unless it is an encoded word.
        assert_eq!(decode("=?UTF-8?B?not base64?="), "=?UTF-8?B?not base64?=");
        assert_eq!(decode("=?UTF-8?B?Y2Fmw6k=?="), "café");
    }

    proptest::proptest! {
        /// Any text comes back from its header as it went in.
        #[test]
        fn any_value_round_trips(value in "\\PC{0,40}") {
            proptest::prop_assert_eq!(decode(&encode(&value)), value);
        }
    }
}
