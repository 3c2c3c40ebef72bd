//! The polling fallback, for clients without a WebSocket: room history by offset or time.
//!
//! - `GET /api/history?room=&since=&limit=`: any room the caller may read.
//! - `GET /api/venues/updates`, `/api/venues/{id}/updates`, `/api/venues/{id}/vibe-checks`,
//!   `/api/venues/{id}/promotions`: the venue contract's routes over its channels.
//! - `GET /api/notifications?since=&unread=`: the caller's notification inbox.
//!
//! `since` is an offset (entries after it) or an RFC 3339 time; results come oldest first, each
//! with its offset, and `nextSince` is what to send next time.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::UserAuth;
use crate::access::{self, AccessError};
use crate::history::Since;
use crate::publish::inbox;
use crate::rooms::{self, Room};
use crate::state::AppState;

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/history", get(history))
        .route("/api/venues/updates", get(all_venue_updates))
        .route("/api/venues/{id}/updates", get(venue_updates))
        .route("/api/venues/{id}/vibe-checks", get(vibe_checks))
        .route("/api/venues/{id}/promotions", get(promotions))
        .route("/api/notifications", get(notifications))
}

#[derive(Debug, Deserialize)]
struct Window {
    since: Option<String>,
    limit: Option<String>,
}

impl Window {
    fn since(&self) -> Result<Since, ApiError> {
        match self.since.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(Since::Offset(0)),
            Some(text) => Since::parse(text).ok_or_else(|| {
                ApiError::invalid_field("since", format!("`{text}` is neither an offset nor an RFC 3339 time"))
            }),
        }
    }

    fn limit(&self) -> Result<u64, ApiError> {
        match self.limit.as_deref() {
            None => Ok(DEFAULT_LIMIT),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| ApiError::invalid_field("limit", format!("must be a number from 1 to {MAX_LIMIT}"))),
        }
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    room: Option<String>,
    #[serde(flatten)]
    window: Window,
}

async fn history(
    UserAuth(identity): UserAuth,
    State(state): State<AppState>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let name = query.room.as_deref().ok_or_else(|| ApiError::invalid_field("room", "is required"))?;
    let room = Room::parse(name).map_err(|e| ApiError::invalid_field("room", e.to_string()))?;
    read_room(&state, &identity, room, &query.window).await
}

async fn all_venue_updates(
    UserAuth(identity): UserAuth,
    State(state): State<AppState>,
    Query(window): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    read_room(&state, &identity, Room::venue_updates(), &window).await
}

/// One of a venue's channels.
async fn venue_channel(
    state: &AppState,
    identity: &crate::auth::Identity,
    room: Result<Room, rooms::RoomError>,
    window: &Window,
) -> Result<Json<Value>, ApiError> {
    let room = room.map_err(|e| ApiError::invalid_field("id", e.to_string()))?;
    read_room(state, identity, room, window).await
}

async fn venue_updates(
    UserAuth(identity): UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(window): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    venue_channel(&state, &identity, Room::venue(&id), &window).await
}

async fn vibe_checks(
    UserAuth(identity): UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(window): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    venue_channel(&state, &identity, Room::vibe_checks(&id), &window).await
}

async fn promotions(
    UserAuth(identity): UserAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(window): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    venue_channel(&state, &identity, Room::promotions(&id), &window).await
}

async fn read_room(
    state: &AppState,
    identity: &crate::auth::Identity,
    room: Room,
    window: &Window,
) -> Result<Json<Value>, ApiError> {
    let since = window.since()?;
    let limit = window.limit()?;
    access::may_read(&state.db, &state.settings.channel_patterns, identity, &room).await.map_err(|e| match e {
        AccessError::Forbidden(_) => ApiError::Forbidden { code: "forbidden", message: e.to_string() },
        AccessError::Unavailable => ApiError::Unavailable { code: "directory_unavailable", message: e.to_string() },
    })?;
    let name = room.name();
    let history = &state.history;
    let rows = history.read(&name, since, limit).await?;
    // With an offset, tell the client whether history still covers everything after it.
    let complete = match since {
        Since::Offset(after) => match history.first_offset(&name).await? {
            Some(first) => first <= after + 1,
            None => true,
        },
        Since::Time(_) => true,
    };
    let next_since = rows.last().map(|r| r.offset).or(match since {
        Since::Offset(o) => Some(o),
        Since::Time(_) => None,
    });
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "offset": r.offset,
                "id": r.publication_id,
                "event": r.event,
                "data": serde_json::from_str::<Value>(&r.data).unwrap_or(Value::Null),
                "publishedAt": r.published_at,
            })
        })
        .collect();
    Ok(Json(json!({"room": name, "items": items, "nextSince": next_since, "complete": complete})))
}

#[derive(Debug, Deserialize)]
struct InboxQuery {
    unread: Option<String>,
    #[serde(flatten)]
    window: Window,
}

async fn notifications(
    UserAuth(identity): UserAuth,
    State(state): State<AppState>,
    Query(query): Query<InboxQuery>,
) -> Result<Json<Value>, ApiError> {
    let since = query.window.since()?;
    let limit = query.window.limit()?;
    let unread_only = matches!(query.unread.as_deref(), Some("true") | Some("1"));
    let rows = inbox::list(&state.db, &identity.user_id, since, unread_only, limit).await?;
    let next_since = rows.last().map(|r| r.seq);
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "offset": r.seq,
                "id": r.notification_id,
                "data": serde_json::from_str::<Value>(&r.data).unwrap_or(Value::Null),
                "createdAt": r.created_at,
                "read": r.read_at.is_some(),
            })
        })
        .collect();
    Ok(Json(json!({"items": items, "nextSince": next_since})))
}
