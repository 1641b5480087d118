//! Virtual keys as the gateway holds them: SHA-256 hashes, looked up in O(1) and compared in
//! constant time.
//!
//! Owns: hashing a presented key, reading it from a request (`Authorization: Bearer` or
//! `x-api-key`), and the table from hash to key. Must never: keep, log or return a key's value;
//! only its hash lives past config loading.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// The SHA-256 of a key's value. Keys are random secrets, so an unsalted hash is as strong as
/// the key itself, and it is the same on every instance (a session bound to a key stays valid
/// on any of them).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl std::fmt::Debug for KeyHash {
    // Even a hash is not printed: `Debug` on a config must not help anyone guess a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash(…)")
    }
}

impl KeyHash {
    pub fn of(value: &[u8]) -> KeyHash {
        KeyHash(Sha256::digest(value).into())
    }

    /// The first 8 bytes: what a session id records of the key that opened it, and the table's
    /// lookup key. Not secret (it does not reveal the key) but stable across instances.
    pub fn fingerprint(&self) -> [u8; 8] {
        let mut f = [0u8; 8];
        f.copy_from_slice(&self.0[..8]);
        f
    }

    /// Compares two hashes in constant time.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The fingerprint of sessions opened without a key (no keys configured).
pub const ANONYMOUS: [u8; 8] = [0; 8];

/// The key a request presents: `Authorization: Bearer <key>` first, else `x-api-key`.
/// `None` when neither is there (or `Authorization` uses another scheme).
pub fn presented<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    if let Some(value) = authorization {
        let value = value.trim_ascii();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
            let key = value[7..].trim_ascii();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    api_key.map(<[u8]>::trim_ascii).filter(|k| !k.is_empty())
}

/// Hash → index of the key in the governance's key list.
#[derive(Default)]
pub struct KeyTable {
    by_fingerprint: HashMap<[u8; 8], Vec<(KeyHash, usize)>>,
}

impl KeyTable {
    pub fn new(hashes: impl IntoIterator<Item = KeyHash>) -> KeyTable {
        let mut by_fingerprint: HashMap<[u8; 8], Vec<(KeyHash, usize)>> = HashMap::new();
        for (index, hash) in hashes.into_iter().enumerate() {
            by_fingerprint
                .entry(hash.fingerprint())
                .or_default()
                .push((hash, index));
        }
        KeyTable { by_fingerprint }
    }

    /// The index of the key whose value is `presented`. The bucket is found by the first 8
    /// bytes of the hash; the whole hash is then compared in constant time.
    pub fn find(&self, presented: &[u8]) -> Option<usize> {
        let hash = KeyHash::of(presented);
        self.by_fingerprint
            .get(&hash.fingerprint())?
            .iter()
            .find(|(stored, _)| stored.matches(&hash))
            .map(|&(_, index)| index)
    }

    pub fn is_empty(&self) -> bool {
        self.by_fingerprint.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_by_value_only() {
        let table = KeyTable::new([
            KeyHash::of(b"alpha-key-0123456789"),
            KeyHash::of(b"beta-key-0123456789"),
        ]);
        assert_eq!(table.find(b"alpha-key-0123456789"), Some(0));
        assert_eq!(table.find(b"beta-key-0123456789"), Some(1));
        assert_eq!(table.find(b"alpha-key-012345678"), None);
        assert_eq!(table.find(b""), None);
    }

    #[test]
    fn reads_bearer_or_api_key() {
        assert_eq!(presented(Some(b"Bearer abc"), None), Some(&b"abc"[..]));
        assert_eq!(presented(Some(b"bearer  abc "), None), Some(&b"abc"[..]));
        assert_eq!(presented(Some(b"Basic abc"), Some(b"k")), Some(&b"k"[..]));
        assert_eq!(presented(Some(b"Bearer "), None), None);
        assert_eq!(presented(None, Some(b" k ")), Some(&b"k"[..]));
        assert_eq!(presented(None, None), None);
    }

    #[test]
    fn debug_shows_no_hash() {
        let h = KeyHash::of(b"secret-value-0123456789");
        assert_eq!(format!("{h:?}"), "KeyHash(…)");
    }
}
