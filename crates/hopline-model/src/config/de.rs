//! A serde `Deserializer` over the positioned YAML tree.
//!
//! Errors raised anywhere below a node (by derived code or by a type's own validation) come
//! back with the key path (`nodes[4].params.daily_amount`) and the line and column of the
//! innermost node that failed. Any scalar can be read as a string with its exact source text,
//! so types such as money amounts parse `5000.00` themselves, without a float in between.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::tree::{Pos, Resolved, Yaml, YamlValue};

/// An error while reading a tree into a type, with the place it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub path: Option<String>,
    pub pos: Option<Pos>,
    pub message: String,
}

impl DeError {
    /// Attaches a place to an error that has none yet (the innermost place wins).
    fn locate(mut self, pos: Pos, path: &str) -> Self {
        if self.pos.is_none() {
            self.pos = Some(pos);
            self.path = Some(path.to_string());
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { path: None, pos: None, message: msg.to_string() }
    }
}

/// Deserializes `node`, which sits at `path` in its document.
pub fn from_tree<'de, T: de::Deserialize<'de>>(node: &'de Yaml, path: &str) -> Result<T, DeError> {
    T::deserialize(De { node, path: path.to_string() })
}

struct De<'de> {
    node: &'de Yaml,
    path: String,
}

fn child_key(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

impl<'de> De<'de> {
    fn locate<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|e| e.locate(self.node.pos, &self.path))
    }

    fn unexpected(&self) -> de::Unexpected<'de> {
        match &self.node.value {
            YamlValue::Seq(_) => de::Unexpected::Seq,
            YamlValue::Map(_) => de::Unexpected::Map,
            YamlValue::Scalar { text, .. } => match self.node.resolve() {
                Some(Resolved::Null) => de::Unexpected::Unit,
                Some(Resolved::Bool(b)) => de::Unexpected::Bool(b),
                Some(Resolved::Float(f)) => de::Unexpected::Float(f),
                Some(Resolved::Int(_)) => de::Unexpected::Other("an integer"),
                _ => de::Unexpected::Str(text),
            },
        }
    }
}

impl<'de> de::Deserializer<'de> for De<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.node;
        let result = match &node.value {
            YamlValue::Seq(items) => visitor.visit_seq(SeqAccess { items: items.iter().enumerate(), path: &self.path }),
            YamlValue::Map(entries) => {
                visitor.visit_map(MapAccess { entries: entries.iter(), value: None, path: &self.path })
            }
            YamlValue::Scalar { text, plain: false } => visitor.visit_borrowed_str(text),
            YamlValue::Scalar { .. } => match node.resolve().expect("scalar resolves") {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(n) => match (u64::try_from(n), i64::try_from(n)) {
                    (Ok(u), _) => visitor.visit_u64(u),
                    (_, Ok(i)) => visitor.visit_i64(i),
                    _ => visitor.visit_i128(n),
                },
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(s) => visitor.visit_borrowed_str(s),
            },
        };
        self.locate(result)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            YamlValue::Scalar { text, .. } => visitor.visit_borrowed_str(text),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(result)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.node.resolve() {
            Some(Resolved::Bool(b)) => visitor.visit_bool(b),
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(result)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.resolve() {
            Some(Resolved::Null) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            YamlValue::Scalar { text, .. } => visitor.visit_enum(text.as_str().into_deserializer()),
            YamlValue::Map(entries) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                let path = child_key(&self.path, key.scalar_text().unwrap_or_default());
                visitor.visit_enum(EnumAccess { key, value, path })
            }
            _ => Err(de::Error::invalid_type(self.unexpected(), &visitor)),
        };
        self.locate(result)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        seq tuple tuple_struct map struct ignored_any
    }
}

struct SeqAccess<'p, I> {
    items: I,
    path: &'p str,
}

impl<'de, I: Iterator<Item = (usize, &'de Yaml)>> de::SeqAccess<'de> for SeqAccess<'_, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => {
                let path = format!("{}[{i}]", self.path);
                seed.deserialize(De { node, path: path.clone() }).map(Some).map_err(|e| e.locate(node.pos, &path))
            }
            None => Ok(None),
        }
    }
}

struct MapAccess<'de, 'p, I> {
    entries: I,
    value: Option<(&'de Yaml, String)>,
    path: &'p str,
}

impl<'de, I: Iterator<Item = &'de (Yaml, Yaml)>> de::MapAccess<'de> for MapAccess<'de, '_, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        let path = child_key(self.path, key.scalar_text().unwrap_or_default());
        let k = seed.deserialize(De { node: key, path: path.clone() }).map_err(|e| e.locate(key.pos, &path))?;
        self.value = Some((value, path));
        Ok(Some(k))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (node, path) = self.value.take().expect("next_value_seed follows next_key_seed");
        seed.deserialize(De { node, path: path.clone() }).map_err(|e| e.locate(node.pos, &path))
    }
}

struct EnumAccess<'de> {
    key: &'de Yaml,
    value: &'de Yaml,
    path: String,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = DeError;
    type Variant = De<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, De<'de>), DeError> {
        let variant = seed.deserialize(De { node: self.key, path: self.path.clone() })?;
        Ok((variant, De { node: self.value, path: self.path }))
    }
}

impl<'de> de::VariantAccess<'de> for De<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::super::tree::parse;
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        limit: u32,
        #[serde(default)]
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Inner>,
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Slow,
    }

    fn read(text: &str) -> Result<Outer, DeError> {
        let tree = parse(text).unwrap();
        from_tree(&tree, "")
    }

    #[test]
    fn reads_nested_structs_lists_and_enums() {
        let outer = read("items:\n  - limit: 3\n    name: a\nmode: slow\n").unwrap();
        assert_eq!(outer.items, vec![Inner { limit: 3, name: Some("a".into()) }]);
        assert_eq!(outer.mode, Mode::Slow);
    }

    #[test]
    fn unknown_key_names_its_path_and_line() {
        let err = read("items:\n  - limit: 3\n    limt: 4\nmode: fast\n").unwrap_err();
        assert_eq!(err.path.as_deref(), Some("items[0].limt"));
        assert_eq!(err.pos.unwrap().line, 3);
        assert!(err.message.contains("unknown field `limt`"), "{}", err.message);
    }

    #[test]
    fn wrong_type_names_the_value_line() {
        let err = read("items:\n  - limit: -3\nmode: fast\n").unwrap_err();
        assert_eq!(err.path.as_deref(), Some("items[0].limit"));
        assert_eq!(err.pos.unwrap().line, 2);
        let err = read("items: []\nmode: medium\n").unwrap_err();
        assert_eq!(err.path.as_deref(), Some("mode"));
        assert!(err.message.contains("unknown variant `medium`"), "{}", err.message);
    }

    #[test]
    fn missing_key_names_the_enclosing_map() {
        let err = read("items:\n  - name: x\nmode: fast\n").unwrap_err();
        assert_eq!(err.path.as_deref(), Some("items[0]"));
        assert_eq!(err.pos.unwrap().line, 2);
        assert!(err.message.contains("missing field `limit`"), "{}", err.message);
    }
}
