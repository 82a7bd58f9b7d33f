//! Bodies the contract documents as JSON objects must be objects.
//!
//! serde's derived struct deserializers also accept a JSON array holding the fields in
//! declaration order, and an empty array when every field has a default: `[]` would be a
//! heartbeat and `[["echo"]]` a batch of one task. [`Object`] asks the format for a map
//! where the type asks for a struct, so such bodies are refused naming the expected
//! object, at no cost for well-formed ones. It applies at the level it wraps: nested
//! structs are wrapped where they are decoded on their own (batch elements).

use serde::de::{Deserialize, Deserializer, Visitor};

/// `T`, decoded only from a JSON object when `T` is a struct; other types decode as usual.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(MapOnly(deserializer)).map(Object)
    }
}

/// Forwards everything to the wrapped deserializer, except that a struct is read as a map.
struct MapOnly<D>(D);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    forward! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct AllDefault {
        a: u32,
        b: String,
    }

    #[test]
    fn a_struct_is_read_only_from_an_object() {
        let Object(v) = serde_json::from_str::<Object<AllDefault>>(r#"{"a":1}"#).unwrap();
        assert_eq!(v.a, 1);
        for array in ["[]", r#"[1,"x"]"#] {
            let e = serde_json::from_str::<Object<AllDefault>>(array).unwrap_err();
            assert!(e.to_string().contains("expected struct AllDefault"), "{e}");
        }
        // Plain serde takes the array form, which is what the wrapper is for.
        assert!(serde_json::from_str::<AllDefault>("[]").is_ok());
    }

    #[test]
    fn other_types_decode_as_usual() {
        let Object(v) = serde_json::from_str::<Object<Vec<String>>>(r#"["a","b"]"#).unwrap();
        assert_eq!(v, ["a", "b"]);
        let Object(v) = serde_json::from_str::<Object<Option<u8>>>("null").unwrap();
        assert_eq!(v, None);
    }
}
