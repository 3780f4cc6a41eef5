//! Row images for conditions: only the columns a condition reads, parsed from the image
//! PostgreSQL wrote.
//!
//! A change carries its row images as JSON text (so webhooks send numbers with the digits
//! PostgreSQL wrote). A condition needs a few columns of them as values: reading just those,
//! and skipping the others without building them, costs a fraction of parsing the whole row.
//! A column PostgreSQL can hold but an `f64` cannot (`numeric` `1e400`) reads as its text.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The columns `wanted` of `image` (a JSON object), as an object; `None` without an image.
pub fn columns(image: Option<&RawValue>, wanted: &BTreeSet<String>) -> Option<Value> {
    let image = image?;
    let mut deserializer = serde_json::Deserializer::from_str(image.get());
    let picked = deserializer.deserialize_map(Pick { wanted }).unwrap_or_default();
    Some(Value::Object(picked))
}

struct Pick<'w> {
    wanted: &'w BTreeSet<String>,
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row image (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut picked = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.wanted.contains(key.as_ref()) {
                let value = map.next_value_seed(Lenient)?;
                picked.insert(key.into_owned(), value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(picked)
    }
}

/// A value, or its text when it is a number no `f64` holds.
struct Lenient;

impl<'de> DeserializeSeed<'de> for Lenient {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        let raw: &RawValue = serde::Deserialize::deserialize(deserializer)?;
        Ok(serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(raw.get().to_string())))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wanted(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn only_the_wanted_columns_are_read() {
        let raw = RawValue::from_string(r#"{"id": 7, "status": "paid", "meta": {"a": [1, 2]}, "total": 99.50}"#.into())
            .unwrap();
        assert_eq!(
            columns(Some(&raw), &wanted(&["status", "meta"])),
            Some(json!({"status": "paid", "meta": {"a": [1, 2]}}))
        );
        assert_eq!(columns(Some(&raw), &wanted(&[])), Some(json!({})));
        assert_eq!(columns(None, &wanted(&["status"])), None);
    }

    #[test]
    fn escaped_keys_and_huge_numbers_are_read() {
        let raw = RawValue::from_string(r#"{"a\"b": 1, "n": 1e400, "s": "x"}"#.into()).unwrap();
        assert_eq!(columns(Some(&raw), &wanted(&["a\"b", "n"])), Some(json!({"a\"b": 1, "n": "1e400"})));
    }
}
