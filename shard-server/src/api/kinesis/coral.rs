//! How the Kinesis service converts JSON values to its model's types, and what it says when a
//! value does not convert. Kinesis' deserializer (AWS's Coral framework, written in Java)
//! answers a value of the wrong JSON type with a `SerializationException` whose message names
//! the Java classes involved, e.g. `class java.lang.Boolean can not be converted to an String`;
//! a JSON number given for an Integer is floored and capped at `2^31 - 1` rather than refused.
//!
//! [`Coral`] wraps any serde [`Deserializer`] and gives a request's typed fields exactly these
//! conversions, so the request shapes in `ops` stay plain serde structs. The model type of a
//! field follows from what the field asks for: `String` for strings, `Boolean` for `bool`,
//! `Integer` for every integer type (the model has no Long inputs), `List` for sequences,
//! `Map` for maps, `Structure` for structs, and the newtypes named [`BLOB`] and [`TIMESTAMP`]
//! for blobs and timestamps.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The newtype name under which a blob asks for its value.
pub const BLOB: &str = "shardline::Blob";
/// The newtype name under which a timestamp asks for its value.
pub const TIMESTAMP: &str = "shardline::Timestamp";

/// Java's name of a JSON number as Kinesis reads it.
const NUMBER_CLASS: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";
const LIST_NOT_EXPECTED: &str = "Start of list found where not expected";
/// Longest piece of a refused string quoted back.
const QUOTED_CHARS: usize = 4096;
const MAP_NOT_EXPECTED: &str = "Start of structure or map found where not expected.";

/// Deserializes `T` from `deserializer` with Kinesis' type conversions.
pub fn deserialize<'de, T: de::Deserialize<'de>, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
    T::deserialize(Coral(deserializer))
}

/// A model type, as the field being read declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelType {
    String,
    Boolean,
    Integer,
    Blob,
    Timestamp,
    List,
    Map,
    Structure,
}

/// The JSON value kinds the conversions distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Boolean,
    Number,
    String,
    List,
    Map,
}

impl ModelType {
    /// The message for a value of kind `found` where this type was expected; `None` when the
    /// value converts. `text` is the string's content when `found` is a string.
    fn refusal(self, found: Found, text: &str) -> Option<String> {
        use Found as F;
        use ModelType as M;
        let converts = matches!(
            (self, found),
            (M::String | M::Blob, F::String)
                | (M::Boolean, F::Boolean)
                | (M::Integer | M::Timestamp, F::Number)
                | (M::List, F::List)
                | (M::Map | M::Structure, F::Map)
        );
        if converts {
            return None;
        }
        let message = match (self, found) {
            (M::List, F::Map) => MAP_NOT_EXPECTED.to_owned(),
            (M::List, _) => "Expected list or null".to_owned(),
            (_, F::List) => LIST_NOT_EXPECTED.to_owned(),
            (_, F::Map) => MAP_NOT_EXPECTED.to_owned(),
            (M::Map, _) => "Expected map or null".to_owned(),
            (M::Structure, _) => "Expected null".to_owned(),
            (M::String, F::Boolean) => "class java.lang.Boolean can not be converted to an String".to_owned(),
            (M::String, _) => format!("{NUMBER_CLASS} can not be converted to an String"),
            (M::Boolean, F::String) => {
                let quoted: String = text.chars().take(QUOTED_CHARS).collect();
                format!("'{}' can not be converted to an Boolean", quoted.to_uppercase())
            }
            (M::Boolean, _) => format!("{NUMBER_CLASS} can not be converted to an Boolean"),
            (M::Integer, F::Boolean) => "class java.lang.Boolean can not be converted to an Integer".to_owned(),
            (M::Integer, _) => "class java.lang.String can not be converted to an Integer".to_owned(),
            (M::Blob, F::Boolean) => "class java.lang.Boolean can not be converted to a Blob".to_owned(),
            (M::Blob, _) => format!("{NUMBER_CLASS} can not be converted to a Blob"),
            (M::Timestamp, F::Boolean) => {
                "class java.lang.Boolean can not be converted to milliseconds since epoch".to_owned()
            }
            (M::Timestamp, _) => "class java.lang.String can not be converted to milliseconds since epoch".to_owned(),
        };
        Some(message)
    }
}

/// A deserializer whose typed requests follow Kinesis' conversions.
pub struct Coral<D>(pub D);

/// Visits what the inner deserializer found, checked against the declared type.
struct Checked<V> {
    declared: ModelType,
    visitor: V,
}

impl<V> Checked<V> {
    fn check<E: de::Error>(&self, found: Found, text: &str) -> Result<(), E> {
        match self.declared.refusal(found, text) {
            Some(message) => Err(E::custom(message)),
            None => Ok(()),
        }
    }
}

/// The largest Integer Kinesis reads; larger numbers are capped to it.
const INTEGER_MAX: i64 = i32::MAX as i64;

impl<'de, V: Visitor<'de>> Visitor<'de> for Checked<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<V::Value, E> {
        self.check(Found::Boolean, "")?;
        self.visitor.visit_bool(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<V::Value, E> {
        self.check(Found::Number, "")?;
        match self.declared {
            ModelType::Integer => self.visitor.visit_i64(value.min(INTEGER_MAX)),
            _ => self.visitor.visit_i64(value),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<V::Value, E> {
        self.check(Found::Number, "")?;
        match self.declared {
            ModelType::Integer => self.visitor.visit_i64(i64::try_from(value).unwrap_or(i64::MAX).min(INTEGER_MAX)),
            _ => self.visitor.visit_u64(value),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<V::Value, E> {
        self.check(Found::Number, "")?;
        match self.declared {
            // Saturating float-to-int conversion, then the Integer cap.
            ModelType::Integer => self.visitor.visit_i64((value.floor() as i64).min(INTEGER_MAX)),
            _ => self.visitor.visit_f64(value),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<V::Value, E> {
        self.check(Found::String, value)?;
        self.visitor.visit_str(value)
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<V::Value, E> {
        self.check(Found::String, value)?;
        self.visitor.visit_borrowed_str(value)
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<V::Value, E> {
        self.check(Found::String, &value)?;
        self.visitor.visit_string(value)
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<V::Value, E> {
        // Only CBOR has byte strings, and only blobs take them.
        match self.declared {
            ModelType::Blob => self.visitor.visit_bytes(value),
            _ => Err(E::invalid_type(de::Unexpected::Bytes(value), &self)),
        }
    }

    fn visit_byte_buf<E: de::Error>(self, value: Vec<u8>) -> Result<V::Value, E> {
        match self.declared {
            ModelType::Blob => self.visitor.visit_byte_buf(value),
            _ => Err(E::invalid_type(de::Unexpected::Bytes(&value), &self)),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.check(Found::List, "")?;
        self.visitor.visit_seq(CoralSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.check(Found::Map, "")?;
        self.visitor.visit_map(CoralMap(map))
    }
}

/// Passes whatever the inner deserializer found on, with nested values still checked.
struct Unchecked<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Unchecked<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<V::Value, E> {
        self.0.visit_bool(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<V::Value, E> {
        self.0.visit_i64(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<V::Value, E> {
        self.0.visit_u64(value)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<V::Value, E> {
        self.0.visit_f64(value)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<V::Value, E> {
        self.0.visit_str(value)
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<V::Value, E> {
        self.0.visit_borrowed_str(value)
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<V::Value, E> {
        self.0.visit_string(value)
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<V::Value, E> {
        self.0.visit_bytes(value)
    }

    fn visit_byte_buf<E: de::Error>(self, value: Vec<u8>) -> Result<V::Value, E> {
        self.0.visit_byte_buf(value)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Coral(deserializer))
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(Coral(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(CoralSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(CoralMap(map))
    }
}

struct CoralSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for CoralSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(CoralSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct CoralMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CoralMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(CoralSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct CoralSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for CoralSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Coral(deserializer))
    }
}

impl<'de, D: Deserializer<'de>> Coral<D> {
    fn declared<V: Visitor<'de>>(self, declared: ModelType, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Checked { declared, visitor })
    }
}

macro_rules! declared {
    ($($method:ident => $declared:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.declared(ModelType::$declared, visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Coral<D> {
    type Error = D::Error;

    declared!(
        deserialize_bool => Boolean,
        deserialize_i8 => Integer,
        deserialize_i16 => Integer,
        deserialize_i32 => Integer,
        deserialize_i64 => Integer,
        deserialize_u8 => Integer,
        deserialize_u16 => Integer,
        deserialize_u32 => Integer,
        deserialize_u64 => Integer,
        deserialize_f32 => Integer,
        deserialize_f64 => Integer,
        deserialize_char => String,
        deserialize_str => String,
        deserialize_string => String,
        deserialize_bytes => Blob,
        deserialize_byte_buf => Blob,
        deserialize_seq => List,
        deserialize_map => Map,
    );

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Unchecked(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_option(Unchecked(visitor))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        match name {
            BLOB => self.declared(ModelType::Blob, visitor),
            TIMESTAMP => self.declared(ModelType::Timestamp, visitor),
            _ => self.0.deserialize_newtype_struct(name, Unchecked(visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Unchecked(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Unchecked(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.declared(ModelType::Structure, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_identifier(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Probe {
        name: Option<String>,
        count: Option<i64>,
        flag: Option<bool>,
        names: Option<Vec<String>>,
        tags: Option<BTreeMap<String, String>>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        key: Option<String>,
    }

    fn refusal(body: &str) -> String {
        let mut json = serde_json::Deserializer::from_str(body);
        let err = deserialize::<Probe, _>(&mut json).expect_err(body);
        let text = err.to_string();
        text.split(" at line ").next().unwrap_or_default().to_owned()
    }

    #[test]
    fn wrong_types_are_named_as_kinesis_names_them() {
        for (body, message) in [
            (r#"{"Name":true}"#, "class java.lang.Boolean can not be converted to an String"),
            (
                r#"{"Name":23}"#,
                "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String",
            ),
            (r#"{"Name":[]}"#, "Start of list found where not expected"),
            (r#"{"Name":{}}"#, "Start of structure or map found where not expected."),
            (r#"{"Count":"23"}"#, "class java.lang.String can not be converted to an Integer"),
            (r#"{"Count":true}"#, "class java.lang.Boolean can not be converted to an Integer"),
            (r#"{"Flag":"yes"}"#, "'YES' can not be converted to an Boolean"),
            (
                r#"{"Flag":1}"#,
                "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean",
            ),
            (r#"{"Names":"a"}"#, "Expected list or null"),
            (r#"{"Names":{}}"#, "Start of structure or map found where not expected."),
            (r#"{"Names":[true]}"#, "class java.lang.Boolean can not be converted to an String"),
            (r#"{"Tags":3}"#, "Expected map or null"),
            (r#"{"Tags":[]}"#, "Start of list found where not expected"),
            (r#"{"Tags":{"a":false}}"#, "class java.lang.Boolean can not be converted to an String"),
            (r#"{"Inner":"x"}"#, "Expected null"),
            (r#"{"Inner":[]}"#, "Start of list found where not expected"),
            (
                r#"{"Inner":{"Key":1}}"#,
                "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String",
            ),
        ] {
            assert_eq!(refusal(body), message, "{body}");
        }
    }

    #[test]
    fn integers_are_floored_and_capped_and_nulls_are_absent() {
        let mut json = serde_json::Deserializer::from_str(
            r#"{"Name":null,"Count":34.56,"Names":["a"],"Tags":{"k":"v"},"Inner":{"Key":"x"},"Other":[1]}"#,
        );
        let probe: Probe = deserialize(&mut json).expect("converts");
        assert_eq!(probe.name, None);
        assert_eq!(probe.count, Some(34));
        assert_eq!(probe.names, Some(vec!["a".to_owned()]));
        assert_eq!(probe.inner, Some(Inner { key: Some("x".to_owned()) }));
        let mut json = serde_json::Deserializer::from_str(r#"{"Count":2147483648}"#);
        assert_eq!(deserialize::<Probe, _>(&mut json).expect("converts").count, Some(2_147_483_647));
    }
}
