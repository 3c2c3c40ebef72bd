//! The publish request: the body of `POST /api/events` and of the general Redis channel.

use serde::Deserialize;
use serde_json::Value;

use super::{FieldError, TargetSpec};
use crate::catalogue::Catalogue;
use crate::event::EventName;
use crate::publication::{Publication, Source};

/// `{event, to, except?, data?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub event: String,
    pub to: TargetSpec,
    #[serde(default)]
    pub except: Option<TargetSpec>,
    #[serde(default)]
    pub data: Value,
}

impl PublishRequest {
    /// Checks the event against the catalogue (unless `allow_unknown`), its payload against the
    /// documented shape, and resolves the audience.
    pub fn into_publication(
        self,
        catalogue: &Catalogue,
        allow_unknown: bool,
        source: Source,
    ) -> Result<Publication, FieldError> {
        let event = checked_event(catalogue, allow_unknown, &self.event, &self.data)?;
        let audience = self.to.resolve(self.except.as_ref())?;
        Ok(Publication::new(event, audience, self.data, source))
    }
}

/// A valid event name that the catalogue knows (or any, with `allow_unknown`), carrying a
/// payload of its documented shape.
pub fn checked_event(
    catalogue: &Catalogue,
    allow_unknown: bool,
    name: &str,
    data: &Value,
) -> Result<EventName, FieldError> {
    let event = EventName::parse(name).map_err(|e| FieldError { field: "event".into(), message: e.to_string() })?;
    if !allow_unknown && catalogue.get(name).is_none() {
        return Err(FieldError {
            field: "event".into(),
            message: format!(
                "`{name}` is not in the event catalogue (set EVENTS_ALLOW_UNKNOWN=true to publish any name)"
            ),
        });
    }
    catalogue.validate(name, data).map_err(|e| FieldError { field: e.field, message: e.message })?;
    Ok(event)
}
