//! Ids as clients and backends send them: a JSON string, or a number read as its decimal text
//! (backends differ: `"42"` and `42` name the same organization). The one place that reading is
//! written; whether an id is usable in a room name is [`crate::rooms::id`]'s business.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An id that arrived as a string or a number. An empty string is kept (callers refuse it with
/// their own field name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LooseId(pub String);

impl LooseId {
    /// The id `value` holds, if it is a string or a number.
    pub fn of(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The id `value` holds, if it is a non-empty string or a number.
    pub fn non_empty(value: &Value) -> Option<String> {
        Self::of(value).filter(|s| !s.is_empty())
    }
}

impl<'de> Deserialize<'de> for LooseId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LooseId::of(&Value::deserialize(d)?)
            .map(LooseId)
            .ok_or_else(|| serde::de::Error::custom("expected an id (string or number)"))
    }
}

/// Serde helper for an optional id: `""` and `null` mean absent.
pub fn deserialize_optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match LooseId::of(&value) {
            Some(id) => Ok(Some(id).filter(|s| !s.is_empty())),
            None => Err(serde::de::Error::custom("expected an id (string or number)")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_numbers_are_ids_and_nothing_else_is() {
        assert_eq!(LooseId::of(&json!("a1")), Some("a1".into()));
        assert_eq!(LooseId::of(&json!(42)), Some("42".into()));
        assert_eq!(LooseId::of(&json!("")), Some(String::new()));
        assert_eq!(LooseId::non_empty(&json!("")), None);
        assert_eq!(LooseId::of(&json!({"id": 1})), None);
        assert_eq!(LooseId::of(&json!(true)), None);
    }

    #[test]
    fn an_optional_id_treats_empty_and_null_as_absent() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "deserialize_optional")]
            id: Option<String>,
        }
        let read = |v: Value| serde_json::from_value::<T>(v).map(|t| t.id);
        assert_eq!(read(json!({"id": 7})).unwrap(), Some("7".into()));
        assert_eq!(read(json!({"id": ""})).unwrap(), None);
        assert_eq!(read(json!({"id": null})).unwrap(), None);
        assert_eq!(read(json!({})).unwrap(), None);
        assert!(read(json!({"id": [1]})).is_err());
    }
}
