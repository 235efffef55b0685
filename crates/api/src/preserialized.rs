//! [`Preserialized`]: a response part serialized once and sent many times. The serve path keeps
//! each cached version's wire form as JSON text next to the value, so a cache hit copies bytes
//! instead of walking the version (content, schema, config) through serde on every request.
//!
//! It serializes as the cached JSON text, which only `serde_json` can embed verbatim (other
//! serializers would see a string); the API speaks JSON only. It deserializes like `T` (clients
//! and tests read it as a plain value) and derefs to `T`.

use std::{ops::Deref, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// `T` with its JSON text (see the module documentation). Cloning is two reference counts.
#[derive(Debug, Clone)]
pub struct Preserialized<T> {
    value: Arc<T>,
    json: Arc<RawValue>,
}

impl<T: Serialize> Preserialized<T> {
    /// Serializes `value` once.
    pub fn new(value: T) -> Result<Self, serde_json::Error> {
        let json = serde_json::value::to_raw_value(&value)?;
        Ok(Preserialized {
            value: Arc::new(value),
            json: Arc::from(json),
        })
    }
}

impl<T> Preserialized<T> {
    /// The JSON text sent for this value.
    pub fn json(&self) -> &str {
        self.json.get()
    }
}

impl<T> Deref for Preserialized<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Preserialized<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T> Serialize for Preserialized<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

impl<'de, T: Serialize + Deserialize<'de>> Deserialize<'de> for Preserialized<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = T::deserialize(deserializer)?;
        Preserialized::new(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Part {
        name: String,
        tags: Vec<String>,
    }

    #[derive(Serialize)]
    struct Whole<'a> {
        before: u8,
        part: &'a Preserialized<Part>,
        after: u8,
    }

    #[test]
    fn a_preserialized_value_is_sent_exactly_as_the_value_would_be() {
        let part = Part {
            name: "greet \"quoted\"".into(),
            tags: vec!["a".into(), "é".into()],
        };
        let expected = serde_json::to_string(&serde_json::json!({
            "before": 1,
            "part": serde_json::to_value(&part).expect("value"),
            "after": 2,
        }))
        .expect("json");
        let part = Preserialized::new(part).expect("serializes");
        let sent = serde_json::to_string(&Whole {
            before: 1,
            part: &part,
            after: 2,
        })
        .expect("json");
        let sent: serde_json::Value = serde_json::from_str(&sent).expect("valid JSON");
        let expected: serde_json::Value = serde_json::from_str(&expected).expect("valid JSON");
        assert_eq!(sent, expected);
    }

    #[test]
    fn a_preserialized_value_reads_back_as_the_value() {
        let read: Preserialized<Part> =
            serde_json::from_str(r#"{"name":"n","tags":["x"]}"#).expect("reads");
        assert_eq!(read.name, "n");
        assert_eq!(read.json(), r#"{"name":"n","tags":["x"]}"#);
    }
}
