//! Extractors that answer in the API's error format rather than axum's plain text.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::AppState;

/// A JSON body: malformed → 400 `invalid_request`, wrong or unknown field → 422 `invalid_field`
/// naming the field, too large → 413 `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::InvalidRequest("a JSON body is required".into()));
        }
        parse_json(&bytes).map(Self)
    }
}

/// Reads the whole body within the router's size limit.
pub async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidRequest(rejection.body_text())
        }
    })
}

/// Parses a JSON document, naming the offending field when the shape is wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = unknown_field(&inner.to_string()).unwrap_or(path);
                ApiError::invalid_field(field, inner.to_string())
            }
            _ => ApiError::InvalidRequest(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::InvalidRequest(format!("malformed JSON: {e}")))?;
    Ok(parsed)
}

/// serde reports an unknown field at its parent's path; name the field itself.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// The bearer token of the request, or its `?ticket=` query parameter (for plain pages).
pub struct BearerOrQuery(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerOrQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers) {
            return Ok(Self(token));
        }
        let query = parts.uri.query().unwrap_or_default();
        let ticket = url_param(query, "ticket");
        ticket
            .map(Self)
            .ok_or_else(|| ApiError::InvalidTicket("a queue ticket is required".into()))
    }
}

/// The token of an `Authorization: Bearer …` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn url_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        // Tickets are base64url and dots: nothing to percent-decode.
        (key == name && !value.is_empty()).then(|| value.to_owned())
    })
}

/// The client's address: the peer, or the first untrusted hop of `X-Forwarded-For` when the
/// peer is a trusted proxy. Anyone else's `X-Forwarded-For` is ignored, so it cannot be spoofed.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |ci| ci.0.ip());
        let trusted = |ip: &IpAddr| state.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return Ok(Self(peer));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        // Walk from the nearest hop back; the first address that is not our proxy is the client.
        let client = forwarded.iter().rev().find(|ip| !trusted(ip)).copied();
        Ok(Self(client.unwrap_or(peer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        user_id: Option<String>,
    }

    #[test]
    fn json_errors_name_the_field_or_say_malformed() {
        let err = parse_json::<Body>(br#"{"user_id": 5}"#).unwrap_err();
        assert!(matches!(err, ApiError::InvalidField { ref field, .. } if field == "user_id"));
        let err = parse_json::<Body>(br#"{"colour": "red"}"#).unwrap_err();
        assert!(matches!(err, ApiError::InvalidField { ref field, .. } if field == "colour"));
        let err = parse_json::<Body>(br#"{"user_id": "#).unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest(_)));
        let err = parse_json::<Body>(br#"{} {}"#).unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest(_)));
    }
}
