//! Small helpers: the continue-token codec (URL-safe base64), RFC 3339
//! creation timestamps, and fake UIDs.

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Continue tokens: URL-safe base64, written unpadded, read padded or not.
pub(crate) const CONTINUE_TOKEN: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The current time as an RFC 3339 UTC timestamp with second precision,
/// the format Kubernetes uses for `metadata.creationTimestamp`.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now().as_second())
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A deterministic, UUID-shaped identifier derived from a counter.
pub(crate) fn fake_uid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    #[test]
    fn continue_token_round_trip() {
        for s in ["", "a", "ab", "abc", "abcd", "{\"rv\":12,\"ns\":\"x\"}"] {
            let enc = CONTINUE_TOKEN.encode(s.as_bytes());
            assert_eq!(
                CONTINUE_TOKEN.decode(&enc).unwrap(),
                s.as_bytes(),
                "{s} -> {enc}"
            );
        }
        assert_eq!(CONTINUE_TOKEN.encode(b"hello"), "aGVsbG8");
        assert_eq!(CONTINUE_TOKEN.decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(CONTINUE_TOKEN.encode([0xfb, 0xff]), "-_8");
        assert!(CONTINUE_TOKEN.decode("a*b").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(now_rfc3339().len(), "1970-01-01T00:00:00Z".len());
    }
}
