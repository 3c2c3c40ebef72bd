//! `ApiJson<T>`: axum's `Json` with refusals in the API's error shape, naming what is wrong
//! (`missing field `event``, `to: unknown field `team``, a syntax error's line and column).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};

use super::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(rejection) => {
                let code = match &rejection {
                    JsonRejection::JsonSyntaxError(_) => "invalid_json",
                    JsonRejection::JsonDataError(_) => "invalid_body",
                    JsonRejection::MissingJsonContentType(_) => "content_type",
                    _ => "invalid_body",
                };
                Err(ApiError::BadRequest { code, message: rejection.body_text() })
            }
        }
    }
}
