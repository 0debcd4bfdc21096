//! The tower layer: lets only admitted requests through to the inner service, with the
//! [`Admission`] in the request's extensions (where the extractor finds it).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Redirect, Response};
use http::Request;
use tower::{Layer, Service};

use crate::{Admission, Refused, Verifier};

/// Requires an admission on every request of the services it wraps.
#[derive(Clone)]
pub struct RequireAdmissionLayer {
    verifier: Verifier,
    redirect: Option<String>,
}

impl RequireAdmissionLayer {
    /// Refuses requests without a valid admission with 401 (JSON).
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            redirect: None,
        }
    }

    /// Sends people without a valid admission to `location` (the waiting room) with a 303
    /// instead: what a browser should get. A gateway out of reach still answers 503.
    pub fn redirect_to(mut self, location: impl Into<String>) -> Self {
        self.redirect = Some(location.into());
        self
    }
}

impl<S> Layer<S> for RequireAdmissionLayer {
    type Service = RequireAdmission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAdmission {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequireAdmissionLayer`].
#[derive(Clone)]
pub struct RequireAdmission<S> {
    inner: S,
    layer: RequireAdmissionLayer,
}

impl<S> Service<Request<Body>> for RequireAdmission<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone that was made ready serves this request; the fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            match layer.verifier.verify_request(request.headers()).await {
                Ok(admission) => {
                    request.extensions_mut().insert::<Admission>(admission);
                    inner.call(request).await
                }
                Err(refused) => Ok(refuse(&layer, refused)),
            }
        })
    }
}

fn refuse(layer: &RequireAdmissionLayer, refused: Refused) -> Response {
    match (&layer.redirect, &refused) {
        (_, Refused::KeysUnavailable(_)) | (None, _) => refused.into_response(),
        (Some(location), _) => Redirect::to(location).into_response(),
    }
}
