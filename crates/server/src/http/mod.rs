//! The HTTP server: the router (every route registered together with its OpenAPI description),
//! the edge around it (request ids, tracing, metrics and the access log, timeout, panic guard;
//! [`edge`]), the body limit, and [`serve`].

pub mod access;
pub mod caching;
pub mod deploy;
pub mod edge;
pub mod extract;
pub mod links;
pub mod prompts;
pub mod retire;
pub mod reviews;
pub mod runs;
pub mod system;
pub mod testcases;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{DefaultBodyLimit, Request},
    routing::get,
};
use tokio::net::TcpListener;
use tower::{Layer, ServiceBuilder};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{settings::Settings, vault::Vault};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub settings: Arc<Settings>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "promptvault",
        description = "Prompt management: versioned, labelled, linked and rendered prompt templates.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "prompts", description = "Prompts and their metadata"),
        (name = "versions", description = "Immutable versions and diffs"),
        (name = "labels", description = "Movable pointers to versions"),
        (name = "links", description = "Which prompt an agent uses for a capability"),
        (name = "render", description = "Rendering with parameters"),
        (name = "prompt types", description = "Shared parameter contracts"),
        (name = "bundle", description = "Import and export"),
        (name = "system", description = "Health"),
        (name = "access", description = "Users, API tokens and the audit log (admins)"),
        (name = "tests", description = "Template test cases stored with a prompt"),
        (name = "reviews", description = "Periodic review (attestations, overdue prompts) and approval workflows: approve, reject, who approved what, the review queue"),
        (name = "runs", description = "Recorded uses of prompts: feedback (outcomes) and usage metrics per version"),
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Declares the bearer credential every `/api` route needs: an opaque `pv_…` token or a JWT.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (`pv_…`, from POST /api/tokens) or a JWT (HS256 or RS256, with `exp`, `sub` = user id)"))
                    .build(),
            ),
        );
    }
}

/// The router and the OpenAPI document describing it, built from the same route list, inside
/// the server's edge ([`edge::EdgeLayer`]: request id and span, panic guard, timeout, security
/// headers, metrics, access log).
///
/// The edge wraps the router once, not every route (`Router::layer` wraps each route, and a
/// router wrapped as the fallback of another clones its boxed stack and boxes its future on
/// every request); the layers inside, [`edge::RouteKnownLayer`] (which hands the matched route
/// template to the edge) and the body limit, are plain services a route clones for free.
/// Serve it with `axum::ServiceExt::into_make_service_with_connect_info` (as [`serve`] does):
/// handlers read the client address.
pub fn router(
    state: AppState,
) -> impl tower::Service<
    Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = edge::EdgeFuture,
> + Clone
+ Send
+ Sync
+ 'static {
    // The process's metrics recorder, installed by whichever server starts first.
    crate::metrics::handle();
    let (routes, openapi) = api_routes().split_for_parts();
    let openapi = Arc::new(openapi);
    let body_limit = state.settings.http.body_limit_bytes;
    let timeout = Duration::from_secs(state.settings.http.request_timeout_secs);
    let routes = routes
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .layer(edge::RouteKnownLayer)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state);
    edge::EdgeLayer::new(timeout).layer(routes)
}

/// The OpenAPI document (for `GET /api/openapi.json` and for tests).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(prompts::list_prompts, prompts::create_prompt))
        .routes(routes!(
            prompts::get_prompt,
            prompts::update_prompt,
            prompts::delete_prompt
        ))
        .routes(routes!(prompts::add_version))
        .routes(routes!(prompts::get_version))
        .routes(routes!(prompts::version_findings))
        .routes(routes!(prompts::transition_version))
        .routes(routes!(prompts::diff))
        .routes(routes!(prompts::set_label, prompts::remove_label))
        .routes(routes!(prompts::label_history))
        .routes(routes!(prompts::render))
        .routes(routes!(links::link))
        .routes(routes!(links::list_links))
        .routes(routes!(links::delete_link))
        .routes(routes!(links::list_prompt_types, links::create_prompt_type))
        .routes(routes!(
            links::get_prompt_type,
            links::update_prompt_type,
            links::delete_prompt_type
        ))
        .routes(routes!(system::export))
        .routes(routes!(system::import))
        .routes(routes!(access::list_users, access::create_user))
        .routes(routes!(
            access::get_user,
            access::update_user,
            access::delete_user
        ))
        .routes(routes!(access::list_tokens, access::create_token))
        .routes(routes!(access::revoke_token))
        .routes(routes!(access::list_audit))
        .routes(routes!(access::verify_audit))
        .routes(routes!(access::rotate_keys))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(testcases::get_tests, testcases::set_tests))
        .routes(routes!(testcases::run_tests))
        .routes(routes!(retire::mark_reviewed))
        .routes(routes!(retire::reviews_due))
        .routes(routes!(deploy::promote_label))
        .routes(routes!(deploy::rollback_label))
        .routes(routes!(deploy::resolve, deploy::resolve_post))
        .routes(routes!(reviews::approve_version))
        .routes(routes!(reviews::reject_version))
        .routes(routes!(reviews::version_approvals))
        .routes(routes!(reviews::review_queue))
        .routes(routes!(runs::run_feedback))
        .routes(routes!(runs::prompt_metrics))
        .routes(routes!(system::metrics))
}

/// Serves until `shutdown` completes, then drains in-flight requests. The client address is
/// passed to handlers (for the audit log and the failed-authentication limit).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(
            router(state),
        ),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
