//! The API's error policy, in one place.
//!
//! - Inside the library, failures are `thiserror` enums (`StoreError`, `InvalidTicket`, …);
//!   binaries and background loops use `anyhow`.
//! - At the HTTP edge everything becomes one [`ApiError`], answered as
//!   `{"error": {"code": "...", "message": "..."}}` with the status its code implies.
//!   Codes are fixed: clients branch on them.
//! - Infrastructure failures are mapped on purpose: store unreachable → 503 `unavailable` with
//!   `Retry-After`; a request over its time budget → 504 `timeout`. 5xx bodies say nothing
//!   internal; the cause goes to the log.
//! - Bad input never changes state and never answers 500.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// Seconds a client should wait after a 503 before retrying.
const UNAVAILABLE_RETRY_SECS: u64 = 2;

/// Every error the API answers.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the queue ticket is missing, malformed, forged, expired or no longer valid.
    #[error("{0}")]
    InvalidTicket(String),
    /// 401: the join's enqueue token is missing, forged, expired, for another event or malformed.
    #[error("{0}")]
    InvalidEnqueueToken(String),
    /// 410: the sweeper evicted this person after missed heartbeats.
    #[error("you were removed from the queue after not checking in for too long")]
    Evicted,
    /// 410: this person left the queue.
    #[error("you left the queue")]
    Left,
    /// 404: no such event.
    #[error("no event with this id")]
    EventNotFound,
    /// 410: the admission expired before it was used.
    #[error("your admission expired; join the queue again")]
    AdmissionExpired,
    /// 425: not yet inside the door's window.
    #[error("not your turn yet")]
    NotReady {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// 401: the admission token is missing, forged, expired or for an unknown key.
    #[error("{0}")]
    InvalidToken(String),
    /// 409: the admission was already redeemed.
    #[error("this admission was already redeemed")]
    AlreadyRedeemed,
    /// 403: the event is closed.
    #[error("the event is closed")]
    EventClosed,
    /// 403: the event is scheduled or paused and takes no joins now.
    #[error("the event is {0} and not accepting new people right now")]
    EventNotOpen(String),
    /// 429: too many requests from this client.
    #[error("too many requests, slow down")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 503: the queue reached `max_queue_len`.
    #[error("the queue is full")]
    QueueFull,
    /// 503: the store is unreachable.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// 504: the request ran out of time.
    #[error("the request took too long")]
    Timeout,
    /// 400: the request is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// 413: the body is larger than allowed.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 422: a field has a value that is not allowed.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field's name (a path for nested fields).
        field: String,
        /// Why it is refused.
        message: String,
    },
    /// 401: admin API without the right token.
    #[error("missing or wrong admin token")]
    Unauthorized,
    /// 404: no such route.
    #[error("no such resource")]
    NotFound,
    /// 405: the route exists, the method does not.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// 500: a bug. The cause was logged.
    #[error("internal error")]
    Internal,
    /// 409: the `Idempotency-Key` was used before with another body.
    #[error("this Idempotency-Key was already used with a different body")]
    IdempotencyConflict,
    /// 429: the person has too many pending reservations.
    #[error("too many pending reservations; wait for one to complete")]
    TooManyReservations,
    /// 409: an inventory change would set a SKU's total below its held and sold units.
    #[error("{0}")]
    InventoryConflict(String),
    /// 403: the admission was redeemed; the sale backend has the person now.
    #[error("this admission was redeemed and can no longer reserve")]
    AdmissionRedeemed,
    /// 409: the hold already ended another way (completed, released, expired) or never was one.
    #[error("{0}")]
    HoldEnded(String),
    /// 404: no such reservation (for this person).
    #[error("no reservation with this id")]
    ReservationNotFound,
}

impl ApiError {
    /// The fixed code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTicket(_) => "invalid_ticket",
            Self::InvalidEnqueueToken(_) => "invalid_enqueue_token",
            Self::Evicted => "evicted",
            Self::Left => "left",
            Self::AdmissionExpired => "admission_expired",
            Self::NotReady { .. } => "not_ready",
            Self::InvalidToken(_) => "invalid_token",
            Self::AlreadyRedeemed => "already_redeemed",
            Self::EventNotFound => "event_not_found",
            Self::EventClosed => "event_closed",
            Self::EventNotOpen(_) => "event_not_open",
            Self::RateLimited { .. } => "rate_limited",
            Self::QueueFull => "queue_full",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::InvalidRequest(_) => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidField { .. } => "invalid_field",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal => "internal",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::TooManyReservations => "too_many_reservations",
            Self::ReservationNotFound => "reservation_not_found",
            Self::InventoryConflict(_) => "inventory_conflict",
            Self::HoldEnded(_) => "hold_ended",
            Self::AdmissionRedeemed => "admission_redeemed",
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidTicket(_)
            | Self::InvalidEnqueueToken(_)
            | Self::InvalidToken(_)
            | Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Evicted | Self::Left | Self::AdmissionExpired => StatusCode::GONE,
            Self::NotReady { .. } => StatusCode::TOO_EARLY,
            Self::AlreadyRedeemed => StatusCode::CONFLICT,
            Self::EventNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::EventClosed | Self::EventNotOpen(_) | Self::AdmissionRedeemed => {
                StatusCode::FORBIDDEN
            }
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QueueFull | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::IdempotencyConflict | Self::InventoryConflict(_) | Self::HoldEnded(_) => {
                StatusCode::CONFLICT
            }
            Self::TooManyReservations => StatusCode::TOO_MANY_REQUESTS,
            Self::ReservationNotFound => StatusCode::NOT_FOUND,
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } | Self::NotReady { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            Self::QueueFull | Self::Unavailable | Self::EventNotOpen(_) => {
                Some(UNAVAILABLE_RETRY_SECS)
            }
            Self::TooManyReservations => Some(1),
            _ => None,
        }
    }

    /// A 422 naming `field`.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                Self::Unavailable
            }
            StoreError::Protocol(cause) => {
                tracing::error!(%cause, "unexpected store reply");
                Self::Internal
            }
        }
    }
}

tokio::task_local! {
    /// The `X-Request-Id` of the request being handled, for error bodies.
    static REQUEST_ID: String;
}

/// Makes the request id available to every error built while handling the request.
pub async fn scope_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID.scope(id, next.run(req)).await
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The fixed code clients branch on (`invalid_ticket`, `not_ready`, ...).
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// The offending field, for `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's `X-Request-Id`, to find it in the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// The JSON body of this error (with the current request's id, if any).
    pub fn body(&self) -> ErrorBody {
        let field = match self {
            Self::InvalidField { field, .. } => Some(field.clone()),
            _ => None,
        };
        let request_id = REQUEST_ID
            .try_with(Clone::clone)
            .ok()
            .filter(|id| !id.is_empty());
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field,
                request_id,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(code = self.code(), "answered with a server error");
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
