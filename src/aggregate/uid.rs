//! Identities that are usually Kubernetes uids, kept compactly.
//!
//! API servers assign uids as lowercase UUID text: 36 bytes, which as a
//! `Box<str>` cost 16 bytes plus a 48-byte heap chunk. Most of what the
//! aggregate keeps per report and per Event is such identities (the report's
//! name, which Kyverno takes from its resource's uid; the resources of the
//! control tallies; Event uids), so it keeps their 16 bytes inline instead.

use std::hash::{Hash, Hasher};

/// The 16 bytes of a lowercase UUID text (`8-4-4-4-12` hex digits), or
/// `None` for anything else, so that two different texts never map to the
/// same bytes.
pub(super) fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let text = text.as_bytes();
    if text.len() != 36 || [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
        return None;
    }
    let mut digits = text.iter().filter(|&&c| c != b'-').map(|&c| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    });
    let mut out = [0u8; 16];
    for byte in &mut out {
        *byte = (digits.next()?? << 4) | digits.next()??;
    }
    Some(out)
}

/// A text identity: a UUID's 16 bytes, or any other text as written. Two
/// keys are equal exactly when their texts are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Key {
    /// A lowercase UUID.
    Uuid([u8; 16]),
    /// Anything else.
    Text(Box<str>),
}

/// A [`Key`] borrowed from a text, to look a key up without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum KeyRef<'a> {
    /// A lowercase UUID.
    Uuid([u8; 16]),
    /// Anything else.
    Text(&'a str),
}

impl<'a> KeyRef<'a> {
    /// The key of a text.
    pub fn of(text: &'a str) -> Self {
        uuid_bytes(text).map_or(KeyRef::Text(text), KeyRef::Uuid)
    }

    /// The owned key.
    pub fn to_key(self) -> Key {
        match self {
            KeyRef::Uuid(b) => Key::Uuid(b),
            KeyRef::Text(t) => Key::Text(t.into()),
        }
    }
}

impl Key {
    /// The key of a text.
    pub fn new(text: &str) -> Self {
        KeyRef::of(text).to_key()
    }

    /// The key, borrowed.
    pub fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Key::Uuid(b) => KeyRef::Uuid(*b),
            Key::Text(t) => KeyRef::Text(t),
        }
    }
}

/// Hashes as its [`KeyRef`], so the two can look each other up.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_kept_as_their_bytes_and_anything_else_as_text() {
        let uid = "0123abcd-4567-89ef-0011-223344556677";
        assert_eq!(
            Key::new(uid),
            Key::Uuid([
                0x01, 0x23, 0xab, 0xcd, 0x45, 0x67, 0x89, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                0x66, 0x77
            ])
        );
        // Uppercase, a misplaced dash, a non-hex digit, a kind/namespace/name:
        // kept as written, so two different texts never share a key.
        for text in [
            "0123ABCD-4567-89ef-0011-223344556677",
            "0123abcd4-567-89ef-0011-223344556677",
            "0123abcg-4567-89ef-0011-223344556677",
            "Pod/prod/web-1",
            "",
        ] {
            assert_eq!(Key::new(text), Key::Text(text.into()));
        }
    }

    #[test]
    fn a_key_and_its_ref_hash_alike() {
        let hasher = foldhash::fast::FixedState::with_seed(7);
        for text in ["0123abcd-4567-89ef-0011-223344556677", "u1"] {
            let key = Key::new(text);
            assert_eq!(
                std::hash::BuildHasher::hash_one(&hasher, &key),
                std::hash::BuildHasher::hash_one(&hasher, KeyRef::of(text))
            );
        }
        assert_eq!(size_of::<Key>(), 24);
    }
}
