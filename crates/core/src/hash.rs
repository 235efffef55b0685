//! The change checksum (`diff_hash`): SHA-256 over a canonical JSON serialization of a version's
//! content, config and parameter schema. Canonical means object keys sorted at every depth and no
//! insignificant whitespace, so the same version always hashes the same however it was sent.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::Content;

/// Lowercase hex of `bytes` (digests, tokens, cursors): one table lookup per digit.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Bytes, not `char`s pushed one by one (a token's hash is hexed on every request).
    let mut digits = vec![0u8; bytes.len() * 2];
    for (pair, byte) in digits.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    // Only ASCII digits were written, so this never fails.
    String::from_utf8(digits).unwrap_or_default()
}

/// Serializes `value` canonically: keys sorted at every depth, compact.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The `diff_hash` of a version: lowercase hex SHA-256 of the canonical
/// `{"config", "content", "parameter_schema"}` document.
pub fn diff_hash(content: &Content, config: &Value, parameter_schema: Option<&Value>) -> String {
    let document = serde_json::json!({
        "content": content.to_json(),
        "config": config,
        "parameter_schema": parameter_schema.cloned().unwrap_or(Value::Null),
    });
    hex(&Sha256::digest(canonical_json(&document).as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hex_writes_two_lowercase_digits_per_byte_in_order() {
        let cases: [(&[u8], &str); 4] = [
            (&[], ""),
            (&[0x00], "00"),
            (&[0x0f, 0xa5, 0xff], "0fa5ff"),
            (
                &[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0],
                "123456789abcdef0",
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(hex(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": 1, "a": {"d": [3, {"z": 1, "y": 2}], "c": null}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn diff_hash_ignores_key_order_but_not_values() {
        let content = Content::Text("Hello {{ name }}".into());
        let first = diff_hash(&content, &json!({"model": "m", "temperature": 0.2}), None);
        let reordered = diff_hash(&content, &json!({"temperature": 0.2, "model": "m"}), None);
        let changed = diff_hash(&content, &json!({"temperature": 0.3, "model": "m"}), None);
        assert_eq!(first, reordered);
        assert_ne!(first, changed);
        assert_eq!(first.len(), 64);
    }

    #[test]
    fn diff_hash_distinguishes_an_empty_schema_from_no_schema() {
        let content = Content::Text("x".into());
        assert_ne!(
            diff_hash(&content, &json!({}), None),
            diff_hash(&content, &json!({}), Some(&json!({})))
        );
    }
}
