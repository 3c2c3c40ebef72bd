//! The directory API backends use to keep users, memberships and invitations current.
//!
//! - `PUT|GET|DELETE /api/users/{id}`
//! - `PUT|DELETE /api/tenants/{t}/projects/{p}/members/{userId}`, `GET .../members`;
//!   the same under `channels`. Removing a membership also takes the user's live sockets out
//!   of the room.
//! - `PUT|GET|DELETE /api/invitations/{id}`. Changing an invitation's organization (or deleting
//!   it) also takes the sockets no longer allowed to watch it out of its room.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, ApiKey};
use crate::directory::{self, InvitationRecord, InvitationStatus, MembershipKey, ResourceKind, Upsert, UserRecord};
use crate::id::deserialize_optional as deserialize_optional_id;
use crate::invitations;
use crate::publication::{Audience, RoomAction, RoomOp};
use crate::rooms::{self, Room};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/{id}", put(put_user).get(get_user).delete(delete_user))
        .route("/api/tenants/{tenant}/{kind}/{resource}/members", get(list_members))
        .route("/api/tenants/{tenant}/{kind}/{resource}/members/{user}", put(put_member).delete(delete_member))
        .route("/api/invitations/{id}", put(put_invitation).get(get_invitation).delete(delete_invitation))
}

fn status_of(upsert: Upsert) -> StatusCode {
    match upsert {
        Upsert::Created => StatusCode::CREATED,
        Upsert::Updated => StatusCode::OK,
    }
}

/// An id from the path, checked so that it can be part of a room name.
fn path_id(field: &'static str, value: &str) -> Result<String, ApiError> {
    rooms::id(field, value).map_err(|e| ApiError::invalid_field(field, e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default, deserialize_with = "deserialize_optional_id")]
    organization_id: Option<String>,
    #[serde(default, deserialize_with = "deserialize_optional_id")]
    tenant_id: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

async fn put_user(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<(StatusCode, Json<entity::user::Model>), ApiError> {
    let id = path_id("id", &id)?;
    for (field, value) in [("organizationId", &body.organization_id), ("tenantId", &body.tenant_id)] {
        if let Some(v) = value {
            path_id(field, v)?;
        }
    }
    let record = UserRecord {
        email: body.email,
        email_verified: body.email_verified,
        organization_id: body.organization_id,
        tenant_id: body.tenant_id,
        role: body.role,
    };
    let (user, upsert) = directory::put_user(&state.db, &id, record).await?;
    if !user.email_verified {
        revoke(&state, &id).await;
    }
    Ok((status_of(upsert), Json(user)))
}

async fn get_user(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<entity::user::Model>, ApiError> {
    directory::find_user(&state.db, &id).await?.map(Json).ok_or_else(|| ApiError::not_found("user", &id))
}

async fn delete_user(_: ApiKey, State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    if directory::delete_user(&state.db, &id).await? {
        revoke(&state, &id).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("user", &id))
    }
}

/// With `AUTH_REQUIRE_USER`, a user the directory no longer admits (deleted, unverified) loses
/// his live connections on every instance.
async fn revoke(state: &AppState, user: &str) {
    if !state.settings.auth_require_user {
        return;
    }
    let Ok(room) = Room::user(user) else { return };
    tracing::info!(user, "user revoked: disconnecting his connections");
    let op = RoomOp { target: Audience::rooms(vec![room]), action: RoomAction::Revoke };
    state.publisher.apply(op).await;
}

/// `projects` or `channels` in the path.
fn resource_kind(segment: &str) -> Result<ResourceKind, ApiError> {
    match segment {
        "projects" => Ok(ResourceKind::Project),
        "channels" => Ok(ResourceKind::Channel),
        other => Err(ApiError::NotFound {
            code: "not_found",
            message: format!("`{other}` is not a membership collection (projects or channels)"),
        }),
    }
}

fn membership_room(key: &MembershipKey) -> Result<Room, ApiError> {
    let room = match key.kind {
        ResourceKind::Project => Room::project(&key.tenant_id, &key.resource_id),
        ResourceKind::Channel => Room::channel(&key.tenant_id, &key.resource_id),
    };
    room.map_err(|e| ApiError::invalid_field("path", e.to_string()))
}

fn membership_key(tenant: &str, kind: &str, resource: &str, user: &str) -> Result<MembershipKey, ApiError> {
    Ok(MembershipKey {
        tenant_id: path_id("tenant", tenant)?,
        kind: resource_kind(kind)?,
        resource_id: path_id("resource", resource)?,
        user_id: path_id("user", user)?,
    })
}

#[derive(Debug, Default, Deserialize)]
struct MemberBody {
    #[serde(default)]
    role: Option<String>,
}

async fn put_member(
    _: ApiKey,
    State(state): State<AppState>,
    Path((tenant, kind, resource, user)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<entity::membership::Model>), ApiError> {
    let key = membership_key(&tenant, &kind, &resource, &user)?;
    // The body is optional: `PUT` with nothing adds a member without a role.
    let role = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<MemberBody>(&body)
            .map_err(|e| ApiError::BadRequest { code: "invalid_body", message: e.to_string() })?
            .role
    };
    let (membership, upsert) = directory::put_membership(&state.db, &key, role).await?;
    Ok((status_of(upsert), Json(membership)))
}

async fn delete_member(
    _: ApiKey,
    State(state): State<AppState>,
    Path((tenant, kind, resource, user)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let key = membership_key(&tenant, &kind, &resource, &user)?;
    let room = membership_room(&key)?;
    let removed = directory::delete_membership(&state.db, &key).await?;
    // Whether or not the record existed, no connection of this user, on any instance, may
    // stay in the room.
    let op = RoomOp {
        target: Audience::rooms(vec![Room::User(key.user_id.clone())]),
        action: RoomAction::Leave(vec![room.name()]),
    };
    state.publisher.apply(op).await;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("membership", &format!("{room} / user {}", key.user_id)))
    }
}

async fn list_members(
    _: ApiKey,
    State(state): State<AppState>,
    Path((tenant, kind, resource)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let kind = resource_kind(&kind)?;
    let members = directory::list_members(&state.db, &tenant, kind, &resource).await?;
    Ok(Json(json!({ "members": members })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvitationBody {
    #[serde(default, deserialize_with = "deserialize_optional_id")]
    organization_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default = "pending")]
    status: InvitationStatus,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    used_at: Option<DateTime<Utc>>,
    #[serde(default)]
    revoked_at: Option<DateTime<Utc>>,
}

fn pending() -> InvitationStatus {
    InvitationStatus::Pending
}

async fn put_invitation(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InvitationBody>,
) -> Result<(StatusCode, Json<entity::invitation::Model>), ApiError> {
    let id = path_id("id", &id)?;
    if let Some(org) = &body.organization_id {
        path_id("organizationId", org)?;
    }
    let record = InvitationRecord {
        organization_id: body.organization_id,
        email: body.email,
        status: body.status,
        expires_at: body.expires_at,
        used_at: body.used_at,
        revoked_at: body.revoked_at,
    };
    let (invitation, upsert) = directory::put_invitation(&state.db, &id, record).await?;
    // Recorded first: a watch checked after this sees the new organization, and one checked
    // before is in the room by the time this leave reaches it.
    invitations::evict_watchers(&state.publisher, &id, invitation.organization_id.as_deref()).await;
    Ok((status_of(upsert), Json(invitation)))
}

async fn get_invitation(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<entity::invitation::Model>, ApiError> {
    directory::find_invitation(&state.db, &id).await?.map(Json).ok_or_else(|| ApiError::not_found("invitation", &id))
}

async fn delete_invitation(
    _: ApiKey,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let removed = directory::delete_invitation(&state.db, &id).await?;
    // Whether or not it existed, an invitation the directory does not know has no watchers.
    if let Ok(id) = rooms::id("id", &id) {
        invitations::evict_watchers(&state.publisher, &id, None).await;
    }
    if removed { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found("invitation", &id)) }
}
