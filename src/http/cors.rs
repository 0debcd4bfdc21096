//! CORS for the public API, so a sale frontend on another origin can join, poll, enter and
//! reserve. Nothing is allowed unless `VESTIBULE_CORS_ORIGINS` lists the origin, exactly
//! (scheme, host and port; no wildcard, no pattern): a pattern is how sites end up trusting
//! `evil-example.com` for `example.com`.
//!
//! The admin API, the redeem call and `/v1/admissions/check` get no CORS headers: the first is
//! for operators on the gateway's own origin (the console), the others for servers, which CORS
//! does not concern. Credentials (cookies) are never allowed: the API takes bearer tokens.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// An exact origin as browsers send it in `Origin`: `http(s)://host[:port]`, nothing after.
/// Anything else (a path, a trailing slash, `*`, `null`, credentials) is refused at start, so a
/// typo fails loudly instead of silently allowing nothing.
pub fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not an origin: {e}"))?;
    // The URL standard lets `*` into a host name; here it would only be a misread wildcard.
    if text.contains('*') {
        return Err(format!("{text:?}: no wildcards, list each origin"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?}: an origin is http:// or https://"));
    }
    let origin = url.origin().ascii_serialization();
    if origin != text {
        return Err(format!(
            "{text:?} is not an exact origin (scheme://host[:port], lower case, no path or \
             trailing slash); did you mean {origin:?}?"
        ));
    }
    HeaderValue::from_str(&origin).map_err(|e| format!("{text:?}: {e}"))
}

/// The layer for the public routes; with no origins listed it allows nothing (a browser on
/// another origin gets no `Access-Control-Allow-Origin` and stops).
pub fn layer(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
        ])
        // A frontend backs off by `Retry-After` and reports `X-Request-Id` with a problem.
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .max_age(MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_origins_are_accepted() {
        for good in [
            "https://shop.example",
            "http://127.0.0.1:3000",
            "https://[::1]:8443",
        ] {
            assert_eq!(parse_origin(good).unwrap(), good);
        }
        for bad in [
            "*",
            "null",
            "https://shop.example/",
            "https://shop.example/path",
            "https://Shop.example",
            "https://shop.example:443",
            "https://user@shop.example",
            "ftp://shop.example",
            "shop.example",
            "https://*.example",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} accepted");
        }
    }
}
