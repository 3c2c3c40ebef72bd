//! `GET /metrics`: the Prometheus exposition. With `METRICS_TOKEN` set, a scraper must present
//! it as a Bearer token.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiError;
use crate::auth::token::bearer;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(expected) = &state.settings.operations.metrics_token
        && !bearer(&headers).is_some_and(|given| expected.matches(given))
    {
        return Err(ApiError::Unauthorized {
            code: "metrics_token_required",
            message: "GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>`".into(),
        });
    }
    let body = state.metrics.render(state.hub.connection_counts());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}
