//! Secrets: opaque API tokens (generation format, hashing for storage) and constant-time
//! comparison. The secret of a token is shown once; only its SHA-256 is stored.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every opaque token starts with this, so a leaked one is recognisable (and scannable).
pub const TOKEN_PREFIX: &str = "pv_";

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && bool::from(left.ct_eq(right))
}

/// Formats 32 random bytes (from the caller's CSPRNG) as a token: `pv_` + 64 hex digits.
pub fn format_token(random: &[u8; 32]) -> String {
    format!("{TOKEN_PREFIX}{}", crate::hash::hex(random))
}

/// What is stored for a token: its SHA-256, hex. Tokens have 256 bits of entropy, so a fast
/// hash is enough (no password stretching needed) and lookups stay O(1).
pub fn token_hash(token: &str) -> String {
    crate::hash::hex(&Sha256::digest(token.as_bytes()))
}

/// The first characters of a token, kept in clear to recognise it in lists.
pub fn token_display_prefix(token: &str) -> String {
    token.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_hex_and_hash_deterministically() {
        let token = format_token(&[0xab; 32]);
        assert!(token.starts_with("pv_abab"));
        assert_eq!(token.len(), 3 + 64);
        assert_eq!(token_hash(&token), token_hash(&token));
        assert_ne!(token_hash(&token), token_hash(&format_token(&[0xac; 32])));
        assert_eq!(token_display_prefix(&token), "pv_ababab");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
