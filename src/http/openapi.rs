//! The OpenAPI description, generated from the handlers' `#[utoipa::path]` annotations, so it
//! cannot drift from the code it documents.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, draw, entry, error, inventory, ops, page, queue, reservations};

#[derive(OpenApi)]
#[openapi(
    info(title = "Vestibule", description = "A virtual waiting-room queue gateway: strict FIFO, exact positions, a shared door."),
    paths(
        queue::join,
        queue::status,
        queue::stream,
        queue::leave,
        entry::enter,
        entry::redeem,
        entry::check,
        entry::jwks,
        admin::put_event,
        admin::get_event,
        admin::list_events,
        admin::audit,
        draw::public,
        draw::entries,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
        page::wait_page,
        page::page_info,
        page::admin_page,
        reservations::reserve,
        reservations::get,
        reservations::complete,
        reservations::cancel,
        inventory::put_inventory,
        inventory::get_inventory,
        inventory::inventory_audit,
    ),
    components(schemas(
        error::ErrorBody,
        crate::event::EventConfig,
        crate::store::Figures,
        crate::store::AuditEntry,
    )),
    modifiers(&AdminToken),
)]
struct ApiDoc;

/// Declares the bearer tokens of the admin API and of the sale backend.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "backend_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
