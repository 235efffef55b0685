//! [`Preserialized`]: a response part serialized once and sent many times. The serve cache
//! keeps each cached version's and prompt's wire form as JSON text only, so a cache hit copies
//! bytes instead of walking the version (content, schema, config) through serde on every
//! request, and the cache does not hold the value a second time beside its text.
//!
//! It serializes as the cached JSON text, which only `serde_json` can embed verbatim (other
//! serializers would see a string); the API speaks JSON only. It deserializes from the JSON of
//! `T` (checked by reading it as `T`).

use std::{marker::PhantomData, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The JSON text of a `T` (see the module documentation). Cloning is one reference count.
#[derive(Debug)]
pub struct Preserialized<T> {
    json: Arc<RawValue>,
    value: PhantomData<fn() -> T>,
}

impl<T: Serialize> Preserialized<T> {
    /// Serializes `value` once.
    pub fn new(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Preserialized {
            json: Arc::from(serde_json::value::to_raw_value(value)?),
            value: PhantomData,
        })
    }
}

impl<T> Preserialized<T> {
    /// The JSON text sent for this value.
    pub fn json(&self) -> &str {
        self.json.get()
    }
}

impl<T> Clone for Preserialized<T> {
    fn clone(&self) -> Self {
        Preserialized {
            json: self.json.clone(),
            value: PhantomData,
        }
    }
}

impl<T> PartialEq for Preserialized<T> {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
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
        Preserialized::new(&value).map_err(serde::de::Error::custom)
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
        let expected = serde_json::json!({
            "before": 1,
            "part": serde_json::to_value(&part).expect("value"),
            "after": 2,
        });
        let part = Preserialized::new(&part).expect("serializes");
        let sent = serde_json::to_string(&Whole {
            before: 1,
            part: &part,
            after: 2,
        })
        .expect("json");
        let sent: serde_json::Value = serde_json::from_str(&sent).expect("valid JSON");
        assert_eq!(sent, expected);
    }

    #[test]
    fn a_preserialized_value_reads_only_the_json_of_its_type() {
        let read: Preserialized<Part> =
            serde_json::from_str(r#"{"name":"n","tags":["x"]}"#).expect("reads");
        assert_eq!(read.json(), r#"{"name":"n","tags":["x"]}"#);
        assert!(serde_json::from_str::<Preserialized<Part>>(r#"{"name":1}"#).is_err());
    }
}
