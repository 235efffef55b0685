//! Encryption at rest: a [`KeyRing`] of AES-256-GCM keys, and sealing/opening of records.
//!
//! A ring has one *current* key (used for every new seal) and any number of older keys, kept so
//! that records sealed under them still open while a rotation re-seals them. It is parsed from a
//! configuration string `id:key,id:key,…` (first = current), each key 32 bytes written as 64 hex
//! digits or as base64 (standard or URL-safe alphabet, padding optional).
//!
//! Every seal draws a fresh 96-bit nonce from the operating system's CSPRNG and records the key
//! id next to the ciphertext ([`Sealed`]). The caller's associated data (AAD) — for prompt
//! versions, the version id — is authenticated with the ciphertext, so a ciphertext copied into
//! another record does not open there. Opening with a key id the ring does not hold, or data that
//! does not authenticate, is an error: never garbage.
//!
//! Key bytes never leave this module: `Debug` prints key ids only, errors name key ids only, and
//! the ciphers zeroize their key schedules on drop.
//!
//! Pure computation apart from the nonce's randomness; no files, environment or clock.

use std::{fmt, str::FromStr};

use aes_gcm::{
    Aes256Gcm, Key, KeyInit,
    aead::{Aead, Payload},
};
use thiserror::Error;

/// Length of a key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of a nonce in bytes (the 96-bit GCM nonce).
pub const NONCE_LEN: usize = 12;
/// Longest key id accepted.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Why a key ring could not be built or a record not sealed or opened. Messages name key ids,
/// never key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// The key ring configuration is unusable (empty, malformed entry, bad id, bad key length,
    /// duplicate id).
    #[error("invalid encryption key configuration: {0}")]
    InvalidKeyRing(String),
    /// The record was sealed under a key the ring does not hold.
    #[error("encryption key {key_id:?} is not configured (needed to decrypt this record)")]
    MissingKey { key_id: String },
    /// The ciphertext did not authenticate: the wrong key material under that id, tampered
    /// data, or data belonging to another record.
    #[error(
        "cannot decrypt a record sealed with key {key_id:?}: authentication failed (wrong key, \
         tampered data or data of another record)"
    )]
    Authentication { key_id: String },
    /// A stored seal is structurally broken (e.g. a nonce of the wrong length).
    #[error("malformed sealed record: {0}")]
    Malformed(String),
    /// The operating system's random source or the cipher failed while sealing.
    #[error("cannot seal a record: {0}")]
    Seal(String),
}

/// A sealed record: the id of the key it was sealed under, its nonce and the ciphertext (with
/// the 16-byte authentication tag appended).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

struct RingKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The encryption keys: the current one (first) and older ones still accepted for opening.
pub struct KeyRing {
    /// Never empty; `keys[0]` is the current key. Ids are unique.
    keys: Vec<RingKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current_key_id())
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A ring from `(id, key)` pairs; the first is the current key.
    pub fn from_keys<I, S>(keys: I) -> Result<Self, CryptoError>
    where
        I: IntoIterator<Item = (S, [u8; KEY_LEN])>,
        S: Into<String>,
    {
        let mut ring: Vec<RingKey> = Vec::new();
        for (id, key) in keys {
            let id = id.into();
            check_key_id(&id)?;
            if ring.iter().any(|existing| existing.id == id) {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "key id {id:?} appears twice"
                )));
            }
            let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key));
            ring.push(RingKey { id, cipher });
        }
        if ring.is_empty() {
            return Err(CryptoError::InvalidKeyRing("no key given".into()));
        }
        Ok(KeyRing { keys: ring })
    }

    /// Parses `id:key[,id:key…]` (first = current). Whitespace around entries is ignored; a key
    /// is 64 hex digits or the base64 of 32 bytes.
    pub fn parse(config: &str) -> Result<Self, CryptoError> {
        let mut keys = Vec::new();
        for (index, entry) in config.split(',').enumerate() {
            let entry = entry.trim();
            let position = index + 1;
            if entry.is_empty() {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "entry {position} is empty (expected id:key)"
                )));
            }
            let Some((id, material)) = entry.split_once(':') else {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "entry {position} has no ':' (expected id:key)"
                )));
            };
            let id = id.trim();
            check_key_id(id)?;
            let key = decode_key(material.trim()).ok_or_else(|| {
                CryptoError::InvalidKeyRing(format!(
                    "key {id:?} is not 32 bytes written as 64 hex digits or base64"
                ))
            })?;
            keys.push((id.to_string(), key));
        }
        KeyRing::from_keys(keys)
    }

    /// The id new seals are made under.
    pub fn current_key_id(&self) -> &str {
        // Non-empty by construction.
        self.keys.first().map_or("", |key| key.id.as_str())
    }

    /// Every key id, current first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.id.as_str())
    }

    /// Whether the ring holds a key with this id.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.iter().any(|key| key.id == key_id)
    }

    /// Seals `plaintext` under the current key with a fresh random nonce, authenticating `aad`
    /// with it.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| CryptoError::Seal("the key ring is empty".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .map_err(|error| CryptoError::Seal(format!("no randomness for a nonce: {error}")))?;
        let ciphertext = key
            .cipher
            .encrypt(
                &aes_gcm::Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Seal("the cipher refused the input (too long)".into()))?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a record sealed by [`KeyRing::seal`] with the same `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self
            .keys
            .iter()
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| CryptoError::MissingKey {
                key_id: sealed.key_id.clone(),
            })?;
        let nonce: [u8; NONCE_LEN] = sealed.nonce.as_slice().try_into().map_err(|_| {
            CryptoError::Malformed(format!(
                "nonce is {} bytes, expected {NONCE_LEN}",
                sealed.nonce.len()
            ))
        })?;
        key.cipher
            .decrypt(
                &aes_gcm::Nonce::from(nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Authentication {
                key_id: sealed.key_id.clone(),
            })
    }
}

impl FromStr for KeyRing {
    type Err = CryptoError;

    fn from_str(config: &str) -> Result<Self, Self::Err> {
        KeyRing::parse(config)
    }
}

/// Key ids: 1–64 of ASCII letters, digits, `_`, `-`, `.` (they are stored with every record and
/// appear in errors and logs).
fn check_key_id(id: &str) -> Result<(), CryptoError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(CryptoError::InvalidKeyRing(format!(
            "key id {:?} must be 1 to {MAX_KEY_ID_LEN} letters, digits, '_', '-' or '.'",
            // Cut, so a key pasted in the id's place is not echoed whole.
            id.chars().take(16).collect::<String>()
        )))
    }
}

/// 64 hex digits, or base64 (either alphabet, padding optional) of exactly 32 bytes.
fn decode_key(material: &str) -> Option<[u8; KEY_LEN]> {
    if material.len() == 2 * KEY_LEN && material.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; KEY_LEN];
        for (byte, pair) in key.iter_mut().zip(material.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        return Some(key);
    }
    decode_base64(material)?.try_into().ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Decodes base64 in the standard or the URL-safe alphabet, with or without `=` padding.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for b in text.bytes() {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits must be zero (canonical encoding).
    if buffer & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; KEY_LEN] = [0x11; KEY_LEN];
    const K2: [u8; KEY_LEN] = [0x22; KEY_LEN];

    fn ring(keys: &[(&str, [u8; KEY_LEN])]) -> KeyRing {
        KeyRing::from_keys(keys.iter().map(|(id, key)| (*id, *key))).expect("valid ring")
    }

    #[test]
    fn seal_then_open_round_trips_with_fresh_nonces() {
        let ring = ring(&[("k1", K1)]);
        let first = ring.seal(b"secret text", b"row-1").expect("seals");
        let second = ring.seal(b"secret text", b"row-1").expect("seals");
        assert_eq!(first.key_id, "k1");
        assert_eq!(first.nonce.len(), NONCE_LEN);
        assert_ne!(first.nonce, second.nonce, "a fresh nonce per seal");
        assert_ne!(first.ciphertext, second.ciphertext);
        assert_eq!(first.ciphertext.len(), b"secret text".len() + 16);
        assert!(
            !first
                .ciphertext
                .windows(6)
                .any(|window| window == b"secret")
        );
        assert_eq!(ring.open(&first, b"row-1").expect("opens"), b"secret text");
        assert_eq!(ring.seal(b"", b"x").map(|s| s.ciphertext.len()), Ok(16));
    }

    #[test]
    fn new_seals_use_the_current_key_and_old_keys_still_open() {
        let old = ring(&[("k1", K1)]);
        let sealed = old.seal(b"v1", b"a").expect("seals");
        let rotated = ring(&[("k2", K2), ("k1", K1)]);
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(rotated.open(&sealed, b"a").expect("opens"), b"v1");
        assert_eq!(rotated.seal(b"v2", b"a").expect("seals").key_id, "k2");
    }

    #[test]
    fn a_missing_key_id_is_an_error_naming_it() {
        let sealed = ring(&[("k1", K1)]).seal(b"x", b"a").expect("seals");
        let error = ring(&[("k2", K2)])
            .open(&sealed, b"a")
            .expect_err("k1 is missing");
        assert_eq!(
            error,
            CryptoError::MissingKey {
                key_id: "k1".into()
            }
        );
        assert!(error.to_string().contains("\"k1\""));
    }

    #[test]
    fn the_wrong_key_under_the_same_id_fails_authentication() {
        let sealed = ring(&[("k1", K1)]).seal(b"x", b"a").expect("seals");
        let error = ring(&[("k1", K2)])
            .open(&sealed, b"a")
            .expect_err("wrong key");
        assert_eq!(
            error,
            CryptoError::Authentication {
                key_id: "k1".into()
            }
        );
    }

    #[test]
    fn tampering_fails_authentication() {
        let ring = ring(&[("k1", K1)]);
        let sealed = ring.seal(b"hello world", b"a").expect("seals");
        for index in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[index] ^= 0x01;
            assert!(matches!(
                ring.open(&tampered, b"a"),
                Err(CryptoError::Authentication { .. })
            ));
        }
        let mut nonce = sealed.clone();
        nonce.nonce[0] ^= 0x80;
        assert!(matches!(
            ring.open(&nonce, b"a"),
            Err(CryptoError::Authentication { .. })
        ));
        let mut truncated = sealed.clone();
        truncated.ciphertext.truncate(4);
        assert!(matches!(
            ring.open(&truncated, b"a"),
            Err(CryptoError::Authentication { .. })
        ));
        let mut short_nonce = sealed;
        short_nonce.nonce.pop();
        assert!(matches!(
            ring.open(&short_nonce, b"a"),
            Err(CryptoError::Malformed(_))
        ));
    }

    #[test]
    fn another_records_aad_fails_authentication() {
        let ring = ring(&[("k1", K1)]);
        let sealed = ring.seal(b"x", b"version-1").expect("seals");
        assert!(matches!(
            ring.open(&sealed, b"version-2"),
            Err(CryptoError::Authentication { .. })
        ));
        assert!(matches!(
            ring.open(&sealed, b""),
            Err(CryptoError::Authentication { .. })
        ));
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let ring = KeyRing::parse(&format!("k2:{},k1:{}", "ab".repeat(32), "cd".repeat(32)))
            .expect("valid");
        let debug = format!("{ring:?}");
        assert!(debug.contains("k2") && debug.contains("k1"), "{debug}");
        assert!(!debug.contains("abab") && !debug.contains("171"), "{debug}");
        let sealed = ring.seal(b"plain", b"").expect("seals");
        assert!(!format!("{sealed:?}").contains("plain"));
    }

    #[test]
    fn key_ring_strings_parse_or_fail_clearly() {
        let hex1 = "00".repeat(31) + "01";
        let hex_upper = "AB".repeat(32);
        // 32 bytes of 0xfb: "+/" in standard base64, "-_" in URL-safe.
        let b64_standard = "+/v7".repeat(10) + "+/s=";
        let b64_url = "-_v7".repeat(10) + "-_s";
        let ok: &[(&str, &[&str])] = &[
            (&format!("k1:{hex1}"), &["k1"]),
            (&format!("k2:{hex_upper},k1:{hex1}"), &["k2", "k1"]),
            (
                &format!(" k2 : {hex1} , old.key-1_a:{hex_upper} "),
                &["k2", "old.key-1_a"],
            ),
            (&format!("b:{b64_standard}"), &["b"]),
            (&format!("u:{b64_url}"), &["u"]),
            (
                &format!("k:{}", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
                &["k"],
            ),
        ];
        for (config, ids) in ok {
            let ring = KeyRing::parse(config).unwrap_or_else(|error| panic!("{config}: {error}"));
            assert_eq!(ring.key_ids().collect::<Vec<_>>(), *ids, "{config}");
            assert_eq!(ring.current_key_id(), ids[0]);
        }
        // Hex and base64 of the same bytes make the same key.
        let from_hex = KeyRing::parse(&format!("k:{}", "fb".repeat(32))).expect("hex");
        let from_b64 = KeyRing::parse(&format!("k:{b64_standard}")).expect("base64");
        let sealed = from_hex.seal(b"same", b"").expect("seals");
        assert_eq!(from_b64.open(&sealed, b"").expect("opens"), b"same");

        let bad: &[(&str, &str)] = &[
            ("", "entry 1 is empty"),
            ("   ", "entry 1 is empty"),
            (&format!("k1:{hex1},"), "entry 2 is empty"),
            ("k1", "has no ':'"),
            (&hex1, "has no ':'"),
            (&format!(":{hex1}"), "key id \"\""),
            (&format!("bad id:{hex1}"), "key id \"bad id\""),
            (&format!("{}:{hex1}", "x".repeat(65)), "key id"),
            ("k1:", "key \"k1\" is not 32 bytes"),
            ("k1:abcd", "key \"k1\" is not 32 bytes"),
            (
                &format!("k1:{}", "0".repeat(63)),
                "key \"k1\" is not 32 bytes",
            ),
            (
                &format!("k1:{}", "zz".repeat(32)),
                "key \"k1\" is not 32 bytes",
            ),
            (
                &format!("k1:{}", "A".repeat(40)),
                "key \"k1\" is not 32 bytes",
            ),
            (&format!("k1:{hex1},k1:{hex_upper}"), "\"k1\" appears twice"),
        ];
        for (config, expected) in bad {
            let error = KeyRing::parse(config).expect_err(config).to_string();
            assert!(
                error.contains(expected),
                "{config:?}: {error:?} lacks {expected:?}"
            );
            assert!(
                !error.contains(&hex1) && !error.contains(&hex_upper),
                "{error}"
            );
        }
    }
}
