//! The waiting-room page. `GET /wait/{event_id}` serves a static shell whose script joins,
//! follows the status stream and enters; the script and styles are embedded in the binary, so
//! the page needs no CDN and no build step. `GET /v1/events/{event_id}/page` tells the script
//! the event's public face (title, message, redirect, language, state): nothing secret.
//! `GET /admin/ui` is the operator console over the admin API (the token stays in the tab).

use sha2::{Digest, Sha256};
use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use crate::app::AppState;
use crate::event::{EventId, PAGE_LANGUAGES};

const WAIT_HTML: &str = include_str!("../page/wait.html");
/// The page's text tables, one file per language (the order of [`PAGE_LANGUAGES`]); served
/// ahead of the script in one asset, so the page makes no extra request.
const LANGUAGE_TABLES: [&str; PAGE_LANGUAGES.len()] = [
    include_str!("../page/lang/en.js"),
    include_str!("../page/lang/fr.js"),
    include_str!("../page/lang/de.js"),
    include_str!("../page/lang/es.js"),
    include_str!("../page/lang/it.js"),
    include_str!("../page/lang/pt.js"),
    include_str!("../page/lang/nl.js"),
    include_str!("../page/lang/pl.js"),
    include_str!("../page/lang/ko.js"),
    include_str!("../page/lang/ja.js"),
    include_str!("../page/lang/zh.js"),
];
const WAIT_SCRIPT: &str = include_str!("../page/wait.js");

/// The tables, then the script that uses them.
static WAIT_JS: LazyLock<String> =
    LazyLock::new(|| [LANGUAGE_TABLES.concat(), WAIT_SCRIPT.to_owned()].join("\n"));
const WAIT_CSS: &str = include_str!("../page/wait.css");
const ADMIN_HTML: &str = include_str!("../page/admin.html");
const ADMIN_JS: &str = include_str!("../page/admin.js");
const ADMIN_CSS: &str = include_str!("../page/admin.css");

/// Scripts and styles only from this origin and never inline, so text an operator or an
/// attacker manages to put into the page cannot run; the page talks to this origin only and
/// cannot be framed (clickjacking the "leave" button).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A digest of every asset: the shells link `?v=<version>`, so browsers may keep the assets for
/// a day and still never mix a new shell with an old script.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let all = [WAIT_JS.as_str(), WAIT_CSS, ADMIN_JS, ADMIN_CSS].concat();
    hex::encode(&Sha256::digest(all.as_bytes())[..6])
});

static SHELL: LazyLock<String> = LazyLock::new(|| WAIT_HTML.replace("{{version}}", &VERSION));

static ADMIN_SHELL: LazyLock<String> =
    LazyLock::new(|| ADMIN_HTML.replace("{{version}}", &VERSION));

/// The page's routes; merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/wait/{event_id}", get(wait_page))
        .route("/assets/wait.js", get(wait_js))
        .route("/assets/wait.css", get(wait_css))
        .route("/admin/ui", get(admin_page))
        .route("/assets/admin.js", get(admin_js))
        .route("/assets/admin.css", get(admin_css))
}

/// Headers every page and asset carries.
fn hardened(content_type: &'static str, cache: &'static str) -> [(HeaderName, &'static str); 6] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // The way out to the sale carries no trace of the waiting room.
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

#[utoipa::path(get, path = "/wait/{event_id}", tag = "page",
    params(("event_id" = String, Path, description = "The event")),
    responses((status = 200, description = "The waiting-room page (HTML); an unknown event is reported by the page itself", content_type = "text/html")))]
/// `GET /wait/{event_id}`: the same shell for every event. Whether the event exists is the
/// script's first question, so this answer costs no store call and caches well.
pub(super) async fn wait_page(Path(_event): Path<String>) -> Response {
    (
        hardened("text/html; charset=utf-8", "no-cache"),
        SHELL.as_str(),
    )
        .into_response()
}

async fn wait_js() -> Response {
    (
        hardened("text/javascript; charset=utf-8", "public, max-age=86400"),
        WAIT_JS.as_str(),
    )
        .into_response()
}

async fn wait_css() -> Response {
    (
        hardened("text/css; charset=utf-8", "public, max-age=86400"),
        WAIT_CSS,
    )
        .into_response()
}

#[utoipa::path(get, path = "/admin/ui", tag = "page",
    responses((status = 200, description = "The operator page (HTML); it calls the admin API with the token typed in", content_type = "text/html")))]
/// `GET /admin/ui`: the shell holds no secret; every figure it shows comes from the admin API,
/// called with the token the operator types in.
pub(super) async fn admin_page() -> Response {
    (
        hardened("text/html; charset=utf-8", "no-cache"),
        ADMIN_SHELL.as_str(),
    )
        .into_response()
}

async fn admin_js() -> Response {
    (
        hardened("text/javascript; charset=utf-8", "public, max-age=86400"),
        ADMIN_JS,
    )
        .into_response()
}

async fn admin_css() -> Response {
    (
        hardened("text/css; charset=utf-8", "public, max-age=86400"),
        ADMIN_CSS,
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/events/{event_id}/page", tag = "page",
    params(("event_id" = String, Path, description = "The event")),
    responses(
        (status = 200, description = "`{event_id, title, message, redirect_url, language, state}`", body = Object),
        (status = 404, description = "`event_not_found`", body = crate::http::error::ErrorBody),
        (status = 503, description = "`unavailable`", body = crate::http::error::ErrorBody),
    ))]
/// `GET /v1/events/{event_id}/page`: what the page shows about the event. `language` is the
/// event's, else the best of `Accept-Language` the page speaks, else English. Every waiting
/// page rereads it now and then (to learn of a pause), so shared caches may keep it briefly.
pub(super) async fn page_info(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let event = EventId::parse(&raw).map_err(|_| ApiError::EventNotFound)?;
    let config = app
        .store
        .get_event(&event)
        .await?
        .ok_or(ApiError::EventNotFound)?;
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let language = config
        .language
        .clone()
        .unwrap_or_else(|| negotiate_language(accept).to_owned());
    let body = json!({
        "event_id": event,
        "title": config.title,
        "message": config.message,
        "redirect_url": config.redirect_url,
        "language": language,
        "state": config.state_at(crate::clock::now_ms()),
    });
    Ok((
        [
            (header::CACHE_CONTROL, "public, max-age=5"),
            (header::VARY, "Accept-Language"),
        ],
        Json(body),
    )
        .into_response())
}

/// The page language `Accept-Language` prefers most (RFC 9110 §12.5.4, by primary subtag),
/// or English.
pub fn negotiate_language(accept: &str) -> &'static str {
    let mut ranges: Vec<(&str, f32)> = accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let tag = parts.next().filter(|t| !t.is_empty())?;
            let q = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(Some(1.0), |q| q.parse::<f32>().ok())?;
            Some((tag, q))
        })
        .filter(|(_, q)| *q > 0.0)
        .collect();
    // Stable: among equal weights the header's order wins.
    ranges.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranges
        .iter()
        .find_map(|(tag, _)| {
            let primary = tag.split('-').next().unwrap_or_default();
            PAGE_LANGUAGES
                .iter()
                .find(|lang| lang.eq_ignore_ascii_case(primary))
                .copied()
        })
        .unwrap_or("en")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_wanted_language_the_page_speaks_wins() {
        assert_eq!(negotiate_language("fr-CH, fr;q=0.9, en;q=0.8"), "fr");
        assert_eq!(negotiate_language("sv, de;q=0.5, en;q=0.4"), "de");
        assert_eq!(negotiate_language("en;q=0.2, DE-at;q=0.9"), "de");
        assert_eq!(negotiate_language("fr;q=0, en"), "en");
        assert_eq!(negotiate_language("ja, zh"), "ja");
        assert_eq!(negotiate_language("zh-Hant-TW, ko;q=0.8"), "zh");
        assert_eq!(negotiate_language("sv, pt-BR;q=0.5"), "pt");
        assert_eq!(negotiate_language("sv, da"), "en");
        assert_eq!(negotiate_language(""), "en");
        assert_eq!(negotiate_language("*"), "en");
    }

    #[test]
    fn every_language_has_its_table_in_the_asset() {
        for (lang, table) in PAGE_LANGUAGES.iter().zip(LANGUAGE_TABLES) {
            assert!(
                table.contains(&format!("window.VestibuleTexts || {{}}).{lang} = {{")),
                "the table of {lang} is in the wrong place"
            );
            assert!(WAIT_JS.contains(table));
        }
    }

    #[test]
    fn the_shells_link_versioned_assets_and_no_inline_script() {
        for (shell, script) in [(&*SHELL, "wait.js"), (&*ADMIN_SHELL, "admin.js")] {
            assert!(!shell.contains("{{version}}"));
            assert!(shell.contains(&format!("/assets/{script}?v={}", *VERSION)));
            // The CSP forbids inline script and style: the shells must not need any.
            assert!(!shell.contains("<script>"));
            assert!(!shell.contains("style="));
            let handler = shell.match_indices(" on").any(|(at, _)| {
                let rest = &shell[at + 3..];
                let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
                name_len > 0 && rest[name_len..].starts_with('=')
            });
            assert!(!handler, "no inline event handlers");
        }
    }
}
