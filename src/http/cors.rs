//! Which pages may call the API and open sockets from another origin (`CORS_ORIGINS`,
//! `FRONTEND_URL`).

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, Any, CorsLayer};

use crate::config::Settings;

pub fn cors(settings: &Settings) -> CorsLayer {
    if settings.cors_origins.is_empty() {
        // No origin is trusted with credentials; any page may still use the API and sockets
        // with explicit tokens.
        return CorsLayer::new().allow_origin(Any).allow_methods(Any).allow_headers(Any);
    }
    let origins: Vec<HeaderValue> =
        settings.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods(AllowMethods::list([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS]))
        .allow_headers(AllowHeaders::list([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
        ]))
}
