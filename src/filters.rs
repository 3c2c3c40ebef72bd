//! Filters (SPEC H5): what a connection narrows one of its rooms to, by event names (`prefix:*`
//! allowed) and a simple match on payload fields (equality, or `in` a list, on top-level or
//! dotted fields). `{events: ["invoice:*"], where: {status: "active", "venue.id": {in: [1, 2]}}}`
//! passes a publication whose event matches one of `events` (any event without them) and whose
//! data satisfies every `where` condition.
//!
//! A filter is plain data with a canonical form ([`Filter::key`]): connections with the same
//! filter on a room form one group, evaluated once per publication. Parsing refuses a bad or an
//! oversized filter with the field at fault (`where.status.in`).

use std::fmt;

use serde_json::{Map, Value, json};

/// At most this many event patterns, conditions, and values in one `in`.
const MAX_EVENTS: usize = 32;
const MAX_CONDITIONS: usize = 16;
const MAX_VALUES: usize = 64;
/// A field path of at most this many parts, an event pattern or a path or a text value of at
/// most this many bytes.
const MAX_DEPTH: usize = 4;
const MAX_TEXT: usize = 128;

/// A filter that cannot be used: `field` names the part at fault (`events[2]`, `where.status`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: String,
    pub message: String,
}

impl FilterError {
    /// The refusal code clients see.
    pub const CODE: &'static str = "invalid_filter";
}

/// One room's filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Sorted, deduplicated; empty passes every event.
    events: Vec<EventPattern>,
    /// Sorted by path; every one must hold.
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum EventPattern {
    Exact(String),
    /// `invoice:*`: the names that start with `invoice:`.
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    path: String,
    /// The data's value at `path` must equal one of these scalars.
    allowed: Vec<Value>,
}

impl Filter {
    /// Reads `events` and `where` as a client sends them; `Ok(None)` when both are absent (or
    /// empty): no filter, the room's whole traffic.
    pub fn parse(events: Option<&Value>, conditions: Option<&Value>) -> Result<Option<Filter>, FilterError> {
        let mut patterns = match events {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_EVENTS => {
                items.iter().enumerate().map(|(i, item)| pattern(i, item)).collect::<Result<Vec<_>, _>>()?
            }
            Some(Value::Array(_)) => return Err(err("events", format!("at most {MAX_EVENTS} event names"))),
            Some(_) => return Err(err("events", "a list of event names (`invoice:*` for a prefix)")),
        };
        patterns.sort();
        patterns.dedup();
        let mut checks = match conditions {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(fields)) if fields.len() <= MAX_CONDITIONS => {
                fields.iter().map(|(path, test)| condition(path, test)).collect::<Result<Vec<_>, _>>()?
            }
            Some(Value::Object(_)) => return Err(err("where", format!("at most {MAX_CONDITIONS} fields"))),
            Some(_) => return Err(err("where", "an object of field: value or field: {in: [values]}")),
        };
        checks.sort_by(|a, b| a.path.cmp(&b.path));
        if patterns.is_empty() && checks.is_empty() {
            return Ok(None);
        }
        Ok(Some(Filter { events: patterns, conditions: checks }))
    }

    /// Whether a publication of `event` carrying `data` passes.
    pub fn matches(&self, event: &str, data: &Value) -> bool {
        let event_passes = self.events.is_empty()
            || self.events.iter().any(|p| match p {
                EventPattern::Exact(name) => name == event,
                EventPattern::Prefix(prefix) => event.starts_with(prefix.as_str()),
            });
        event_passes && self.conditions.iter().all(|c| c.holds(data))
    }

    /// The filter as a client would send it, canonical (sorted): equal filters have equal JSON.
    pub fn to_json(&self) -> Value {
        let events: Vec<String> = self.events.iter().map(ToString::to_string).collect();
        let conditions: Map<String, Value> = self
            .conditions
            .iter()
            .map(|c| {
                let test = match c.allowed.as_slice() {
                    [one] => one.clone(),
                    many => json!({"in": many}),
                };
                (c.path.clone(), test)
            })
            .collect();
        let mut out = Map::new();
        if !events.is_empty() {
            out.insert("events".into(), json!(events));
        }
        if !conditions.is_empty() {
            out.insert("where".into(), Value::Object(conditions));
        }
        Value::Object(out)
    }

    /// What identifies the filter's group: its canonical JSON.
    pub fn key(&self) -> String {
        self.to_json().to_string()
    }

    /// Reads back what [`Filter::to_json`] wrote (a saved session's filter).
    pub fn from_json(value: &Value) -> Result<Option<Filter>, FilterError> {
        Filter::parse(value.get("events"), value.get("where"))
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventPattern::Exact(name) => f.write_str(name),
            EventPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl Condition {
    fn holds(&self, data: &Value) -> bool {
        let found = self.path.split('.').try_fold(data, |value, part| value.get(part));
        found.is_some_and(|value| self.allowed.iter().any(|allowed| same(allowed, value)))
    }
}

/// Equal scalars; numbers by value (`1` and `1.0` are the same).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn pattern(index: usize, item: &Value) -> Result<EventPattern, FilterError> {
    let field = format!("events[{index}]");
    let name = item.as_str().ok_or_else(|| err(&field, "an event name (a string)"))?;
    if name.is_empty() || name.len() > MAX_TEXT || name.chars().any(char::is_control) {
        return Err(err(&field, format!("an event name of 1 to {MAX_TEXT} characters")));
    }
    match name.strip_suffix('*') {
        Some(prefix) if prefix.contains('*') => Err(err(&field, "`*` only at the end (`invoice:*`)")),
        Some(prefix) => Ok(EventPattern::Prefix(prefix.to_owned())),
        None if name.contains('*') => Err(err(&field, "`*` only at the end (`invoice:*`)")),
        None => Ok(EventPattern::Exact(name.to_owned())),
    }
}

fn condition(path: &str, test: &Value) -> Result<Condition, FilterError> {
    let field = format!("where.{path}");
    let parts: Vec<&str> = path.split('.').collect();
    if path.len() > MAX_TEXT || parts.len() > MAX_DEPTH || parts.iter().any(|p| p.is_empty()) {
        return Err(err(&field, format!("a field name or a dotted path of at most {MAX_DEPTH} parts")));
    }
    let allowed = match test {
        Value::Object(o) => match (o.len(), o.get("in")) {
            (1, Some(Value::Array(values))) if !values.is_empty() && values.len() <= MAX_VALUES => values.clone(),
            (1, Some(Value::Array(_))) => return Err(err(&format!("{field}.in"), format!("1 to {MAX_VALUES} values"))),
            _ => return Err(err(&field, "a value, or {in: [values]}")),
        },
        Value::Array(_) => return Err(err(&field, "a value, or {in: [values]} for a list")),
        scalar => vec![scalar.clone()],
    };
    for (i, value) in allowed.iter().enumerate() {
        let scalar = match value {
            Value::String(s) => s.len() <= MAX_TEXT,
            Value::Array(_) | Value::Object(_) => false,
            _ => true,
        };
        if !scalar {
            let at = if matches!(test, Value::Object(_)) { format!("{field}.in[{i}]") } else { field.clone() };
            return Err(err(&at, format!("a string (at most {MAX_TEXT} bytes), number, boolean or null")));
        }
    }
    Ok(Condition { path: path.to_owned(), allowed })
}

fn err(field: &str, message: impl Into<String>) -> FilterError {
    FilterError { field: field.to_owned(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(value: Value) -> Filter {
        Filter::parse(value.get("events"), value.get("where")).unwrap().unwrap()
    }

    #[test]
    fn events_by_name_and_by_prefix() {
        let f = filter(json!({"events": ["invoice:*", "bank:sync_error"]}));
        assert!(f.matches("invoice:paid", &json!({})));
        assert!(f.matches("bank:sync_error", &json!(null)));
        assert!(!f.matches("bank:account_connected", &json!({})));
        assert!(!f.matches("expense:created", &json!({})));
    }

    #[test]
    fn where_holds_on_top_level_and_dotted_fields() {
        let f = filter(json!({"where": {"status": "active", "venue.id": {"in": [1, "2"]}}}));
        assert!(f.matches("venue_update", &json!({"status": "active", "venue": {"id": 1.0}})));
        assert!(f.matches("venue_update", &json!({"status": "active", "venue": {"id": "2"}})));
        assert!(!f.matches("venue_update", &json!({"status": "active", "venue": {"id": 2}})), "\"2\" is not 2");
        assert!(!f.matches("venue_update", &json!({"status": "closed", "venue": {"id": 1}})));
        assert!(!f.matches("venue_update", &json!({"status": "active"})), "a missing field fails");
    }

    #[test]
    fn equal_filters_have_one_key_whatever_the_order() {
        let a = filter(json!({"events": ["b", "a:*", "b"], "where": {"y": 1, "x": {"in": [true]}}}));
        let b = filter(json!({"where": {"x": true, "y": 1}, "events": ["a:*", "b"]}));
        assert_eq!(a.key(), b.key());
        assert_eq!(Filter::from_json(&a.to_json()).unwrap().unwrap(), a);
        assert_eq!(Filter::parse(None, Some(&json!({}))).unwrap(), None, "nothing narrows nothing");
    }

    #[test]
    fn bad_filters_are_refused_with_their_field() {
        let field =
            |events: Value, conditions: Value| Filter::parse(Some(&events), Some(&conditions)).unwrap_err().field;
        assert_eq!(field(json!(["ok", 5]), json!(null)), "events[1]");
        assert_eq!(field(json!(["in*voice"]), json!(null)), "events[0]");
        assert_eq!(field(json!("invoice:*"), json!(null)), "events");
        assert_eq!(field(json!(null), json!({"status": {"in": []}})), "where.status.in");
        assert_eq!(field(json!(null), json!({"status": {"in": [1, {"a": 1}]}})), "where.status.in[1]");
        assert_eq!(field(json!(null), json!({"status": {"gt": 1}})), "where.status");
        assert_eq!(field(json!(null), json!({"a..b": 1})), "where.a..b");
        assert_eq!(field(json!(null), json!({"a.b.c.d.e": 1})), "where.a.b.c.d.e");
        let many: Vec<String> = (0..=MAX_EVENTS).map(|i| format!("e{i}")).collect();
        assert_eq!(field(json!(many), json!(null)), "events");
        let wide: Map<String, Value> = (0..=MAX_CONDITIONS).map(|i| (format!("f{i}"), json!(1))).collect();
        assert_eq!(field(json!(null), Value::Object(wide)), "where");
    }
}
