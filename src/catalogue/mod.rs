//! The event catalogue: which event names exist and what their payloads look like: those
//! backends publish, those Switchyard sends itself, and the client events sockets emit (with
//! their answers). The names and shapes are data (`catalogue.toml`, compiled in), read once.
//!
//! - [`export`]: the catalogue as TypeScript interfaces for socket.io-client, or JSON Schema.

mod export;

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::event::EventName;

/// A payload field as a contract documents it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum FieldType {
    Id,
    String,
    Number,
    Boolean,
    Object,
    Datetime,
    Enum {
        values: Vec<String>,
    },
    /// A list of ids.
    Ids,
    /// A list of strings.
    Strings,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Field {
    #[serde(flatten)]
    kind: FieldType,
    #[serde(default)]
    required: bool,
    /// `null` is a value of it too.
    #[serde(default)]
    nullable: bool,
}

#[derive(Debug, Deserialize)]
struct Family {
    contract: String,
    events: Vec<String>,
    #[serde(default)]
    shape: Option<HashMap<String, Field>>,
}

/// Events Switchyard sends its sockets itself (never publishable).
#[derive(Debug, Deserialize)]
struct Own {
    events: Vec<String>,
    #[serde(default)]
    shape: Option<HashMap<String, Field>>,
}

/// Client events of one payload shape.
#[derive(Debug, Deserialize)]
struct ClientFamily {
    events: Vec<String>,
    /// The field that may be sent alone, instead of the object.
    #[serde(default)]
    bare: Option<String>,
    #[serde(default)]
    payload: HashMap<String, Field>,
    #[serde(default)]
    answer: HashMap<String, Field>,
}

#[derive(Debug, Deserialize)]
struct File {
    family: Vec<Family>,
    #[serde(default)]
    own: Vec<Own>,
    #[serde(default)]
    client: Vec<ClientFamily>,
}

/// Fields by name, sorted.
type Shape = Vec<(String, Field)>;

fn sorted(fields: HashMap<String, Field>) -> Shape {
    let mut fields: Shape = fields.into_iter().collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

/// One event a socket may emit.
#[derive(Debug, Clone)]
struct ClientEvent {
    name: String,
    bare: Option<String>,
    payload: Shape,
    answer: Shape,
}

/// What the catalogue knows of one event.
#[derive(Debug, Clone)]
pub struct EventSpec {
    /// The contract document that names the event.
    pub contract: String,
    shape: Option<Vec<(String, Field)>>,
}

/// A payload that does not match its documented shape; `field` is the path (`data.status`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PayloadError {
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub struct Catalogue {
    events: HashMap<String, EventSpec>,
    /// Every event sent to sockets, in the file's order: (name, contract, shape); Switchyard's
    /// own events have the contract `switchyard`.
    sent: Vec<(String, String, Option<Shape>)>,
    client: Vec<ClientEvent>,
}

impl Catalogue {
    /// The compiled-in catalogue.
    pub fn builtin() -> Catalogue {
        let file: File = toml::from_str(include_str!("catalogue.toml")).expect("catalogue.toml is valid");
        let (mut events, mut sent) = (HashMap::new(), Vec::new());
        for family in file.family {
            let shape = family.shape.map(sorted);
            for name in family.events {
                EventName::parse(&name).expect("catalogue names are valid event names");
                let spec = EventSpec { contract: family.contract.clone(), shape: shape.clone() };
                assert!(events.insert(name.clone(), spec).is_none(), "{name} listed twice");
                sent.push((name, family.contract.clone(), shape.clone()));
            }
        }
        for own in file.own {
            let shape = own.shape.map(sorted);
            sent.extend(own.events.into_iter().map(|name| (name, "switchyard".to_owned(), shape.clone())));
        }
        let mut client = Vec::new();
        for family in file.client {
            let (payload, answer) = (sorted(family.payload), sorted(family.answer));
            client.extend(family.events.into_iter().map(|name| ClientEvent {
                name,
                bare: family.bare.clone(),
                payload: payload.clone(),
                answer: answer.clone(),
            }));
        }
        Catalogue { events, sent, client }
    }

    /// The names of the client events, in the catalogue's order.
    pub fn client_events(&self) -> impl Iterator<Item = &str> {
        self.client.iter().map(|e| e.name.as_str())
    }

    pub fn get(&self, event: &str) -> Option<&EventSpec> {
        self.events.get(event)
    }

    /// Checks `data` against the event's documented shape, if it has one.
    pub fn validate(&self, event: &str, data: &Value) -> Result<(), PayloadError> {
        let Some(fields) = self.get(event).and_then(|s| s.shape.as_ref()) else {
            return Ok(());
        };
        let Some(object) = data.as_object() else {
            return Err(PayloadError { field: "data".into(), message: format!("`{event}` carries an object") });
        };
        for (name, field) in fields {
            let path = format!("data.{name}");
            match object.get(name) {
                None | Some(Value::Null) if field.required => {
                    return Err(PayloadError { field: path, message: "is required".into() });
                }
                None | Some(Value::Null) => {}
                Some(value) => check(&field.kind, value).map_err(|message| PayloadError { field: path, message })?,
            }
        }
        Ok(())
    }
}

fn check(kind: &FieldType, value: &Value) -> Result<(), String> {
    let ok = match kind {
        FieldType::Id => matches!(value, Value::String(s) if !s.is_empty()) || value.is_number(),
        FieldType::String => value.is_string(),
        FieldType::Number => value.is_number(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Object => value.is_object(),
        FieldType::Datetime => value.as_str().is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        FieldType::Enum { values } => value.as_str().is_some_and(|s| values.iter().any(|v| v == s)),
        FieldType::Ids => value.as_array().is_some_and(|items| items.iter().all(|v| check(&FieldType::Id, v).is_ok())),
        FieldType::Strings => value.as_array().is_some_and(|items| items.iter().all(Value::is_string)),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        FieldType::Id => "must be a non-empty string or a number".into(),
        FieldType::String => "must be a string".into(),
        FieldType::Number => "must be a number".into(),
        FieldType::Boolean => "must be true or false".into(),
        FieldType::Object => "must be an object".into(),
        FieldType::Datetime => "must be an RFC 3339 date-time like 2024-01-01T00:00:00Z".into(),
        FieldType::Enum { values } => format!("must be one of {}", values.join(", ")),
        FieldType::Ids => "must be a list of ids".into(),
        FieldType::Strings => "must be a list of strings".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_contract_event_is_known() {
        let c = Catalogue::builtin();
        for name in [
            "invitation-update",
            "invoice:overdue",
            "integration:connection_lost",
            "task:deleted",
            "typing:stop",
            "user:status",
            "order_updated",
            "product_availability_changed",
            "venue_update",
        ] {
            assert!(c.get(name).is_some(), "{name}");
        }
        assert!(c.get("invoice:exploded").is_none());
    }

    #[test]
    fn documented_shapes_are_enforced_with_the_field_named() {
        let c = Catalogue::builtin();
        let ok = json!({"invitationId": "i1", "status": "accepted", "usedAt": "2024-01-01T00:00:00Z"});
        assert!(c.validate("invitation-update", &ok).is_ok());
        let bad_status = json!({"invitationId": "i1", "status": "lost"});
        assert_eq!(c.validate("invitation-update", &bad_status).unwrap_err().field, "data.status");
        let bad_date = json!({"invitationId": "i1", "status": "pending", "expiresAt": "soon"});
        assert_eq!(c.validate("invitation-update", &bad_date).unwrap_err().field, "data.expiresAt");
        let missing = json!({"storeId": "s"});
        assert_eq!(c.validate("store_availability_changed", &missing).unwrap_err().field, "data.isActive");
        assert_eq!(c.validate("order_updated", &json!(5)).unwrap_err().field, "data");
        assert!(c.validate("invoice:created", &json!(5)).is_ok(), "no documented shape");
    }
}
