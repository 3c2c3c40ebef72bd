//! `GET /realtime-demo`: a page to try Switchyard from a browser, served by the binary (no build
//! step): connection status, the token to use, subscribing to a channel, watching an
//! invitation, a live event log, and a form that publishes through the API. It speaks to the
//! same endpoints every client uses (Socket.IO on `/socket.io/`, `POST /api/events`).
//!
//! With the development JWT secret (anyone can mint tokens for such a server), the page comes
//! with a token for `demo-user` of `demo-org`; otherwise the user pastes one.

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use crate::auth::Claims;
use crate::state::AppState;

const PAGE: &str = include_str!("realtime-demo.html");
/// How long the page's development token lasts.
const DEMO_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

pub fn router() -> Router<AppState> {
    Router::new().route("/realtime-demo", get(page))
}

async fn page(State(state): State<AppState>) -> Html<String> {
    let (token, hint) = match development_token(&state) {
        Some(token) => (
            token,
            "A development token for demo-user of demo-org, valid for an hour (this server uses the development JWT secret).",
        ),
        None => (
            String::new(),
            "Paste a token signed with this server's JWT secret (`switchyard token --sub <user>` mints one).",
        ),
    };
    let key_hint =
        if state.settings.using_development_api_key { "switchyard-dev-key (development)" } else { "one of API_KEYS" };
    Html(PAGE.replace("{{TOKEN}}", &token).replace("{{TOKEN_HINT}}", hint).replace("{{API_KEY_HINT}}", key_hint))
}

fn development_token(state: &AppState) -> Option<String> {
    let jwt = &state.settings.jwt;
    if !jwt.using_development_secret {
        return None;
    }
    state.tokens.sign(&Claims {
        organization_id: Some("demo-org".into()),
        ..Claims::issued_now("demo-user", DEMO_TOKEN_TTL, jwt)
    })
}
