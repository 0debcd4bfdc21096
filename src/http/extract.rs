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
/// Limits key on [`ClientIp::limit_key`].
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key per-client limits count under: the address, but an IPv6 client by its /64 (one
    /// subscriber's prefix: rotating addresses inside it must not make a new client each time),
    /// and an IPv4-mapped IPv6 address as the IPv4 address it is.
    pub fn limit_key(&self) -> IpAddr {
        match self.0.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
            v4 => v4,
        }
    }
}

/// One hop of `X-Forwarded-For`: an address, also written `ip:port`, `[v6]` or `[v6]:port` (as
/// some load balancers write it); `None` for anything else (`unknown`, an obfuscated name).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// Walks `X-Forwarded-For` from the nearest hop back, through our trusted proxies, to the first
/// address that is not one of them: the client. A hop that is not an address stops the walk at
/// the proxy that wrote it (the right-most one: the peer itself), never skipping to an address
/// further left, which the client could have written.
fn client_from(peer: IpAddr, hops: &[&str], trusted: impl Fn(&IpAddr) -> bool) -> IpAddr {
    if !trusted(&peer) {
        return peer;
    }
    let mut writer = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if trusted(&ip) => writer = ip,
            Some(ip) => return ip,
            None => return writer,
        }
    }
    writer
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |ci| ci.0.ip());
        let trusted = |ip: &IpAddr| state.trusted_proxies.iter().any(|net| net.contains(ip));
        // A header that is not text counts as one hop that is not an address.
        let hops: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .collect();
        Ok(Self(client_from(peer, &hops, trusted)))
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_however_it_is_written() {
        let proxy = |ip: &IpAddr| *ip == "10.0.0.1".parse::<IpAddr>().unwrap();
        let from = |hops: &[&str]| client_from(ip("10.0.0.1"), hops, proxy);
        assert_eq!(
            from(&["6.6.6.6", "1.2.3.4"]),
            ip("1.2.3.4"),
            "the attacker's part is left"
        );
        assert_eq!(from(&["6.6.6.6", "1.2.3.4:5678"]), ip("1.2.3.4"));
        assert_eq!(from(&["6.6.6.6", "[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(from(&["6.6.6.6", "[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(from(&["6.6.6.6", " 1.2.3.4 "]), ip("1.2.3.4"));
        // A hop that is not an address: the proxy that wrote it is all we know.
        assert_eq!(from(&["6.6.6.6", "unknown"]), ip("10.0.0.1"));
        assert_eq!(
            from(&["6.6.6.6", "1.2.3.4", "10.0.0.1", "junk"]),
            ip("10.0.0.1")
        );
        assert_eq!(from(&[]), ip("10.0.0.1"));
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_from(ip("9.9.9.9"), &["1.2.3.4"], proxy),
            ip("9.9.9.9")
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64_and_mapped_v4_as_v4() {
        let key = |s: &str| ClientIp(ip(s)).limit_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:1.2.3.4"), ip("1.2.3.4"));
        assert_eq!(key("1.2.3.4"), ip("1.2.3.4"));
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
