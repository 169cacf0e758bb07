//! Path to handler: the API's routes, every one GET only. [`ROUTES`] is
//! the list of served paths, which docs/operator-api.yaml must match (a
//! test in `tests/` checks both ways).

use crate::console;
use crate::gather::every_shard;
use crate::metrics;
use crate::reply::{json_response, with_type, ApiError, Body};
use crate::rss;
use crate::settings::HubInfo;
use crate::views;
use gonets_engine::{HubHandle, Session};
use gonets_types::{HubError, MessageId};
use hyper::{Method, Response, StatusCode};
use serde_json::json;

/// Every path the API serves, in the OpenAPI file's spelling.
pub const ROUTES: [&str; 7] = [
    "/health",
    "/ready",
    "/queues",
    "/messages/{id}",
    "/info",
    "/metrics",
    "/console",
];

/// What the handlers share: the hub, its facts, and a session as the
/// registry's operator (for message histories).
pub(crate) struct Context {
    pub(crate) hub: HubHandle,
    pub(crate) info: HubInfo,
    pub(crate) operator: Option<Session>,
}

/// A route of [`ROUTES`] a request path matches.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Ready,
    Queues,
    Message(&'a str),
    Info,
    Metrics,
    Console,
}

fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/health" => Some(Route::Health),
        "/ready" => Some(Route::Ready),
        "/queues" => Some(Route::Queues),
        "/info" => Some(Route::Info),
        "/metrics" => Some(Route::Metrics),
        "/console" => Some(Route::Console),
        _ => path
            .strip_prefix("/messages/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(Route::Message),
    }
}

/// Answers one request; every failure is a JSON error with its status.
pub(crate) async fn handle(ctx: &Context, method: &Method, path: &str) -> Response<Body> {
    let Some(route) = route(path) else {
        return ApiError::not_found(format!("no such path: {path}")).into_response();
    };
    if method != Method::GET {
        return ApiError::method_not_allowed(method.as_str(), path).into_response();
    }
    let result = match route {
        Route::Health => Ok(json_response(StatusCode::OK, &json!({ "status": "live" }))),
        Route::Ready => ready(ctx).await,
        Route::Queues => queues(ctx).await,
        Route::Message(id) => message(ctx, id).await,
        Route::Info => info(ctx).await,
        Route::Metrics => metrics_text(ctx).await,
        Route::Console => Ok(console::page()),
    };
    result.unwrap_or_else(ApiError::into_response)
}

async fn ready(ctx: &Context) -> Result<Response<Body>, ApiError> {
    let stats = every_shard(&ctx.hub).await?;
    let (ready, body) = views::readiness(&stats, ctx.hub.stopping());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_response(status, &body))
}

async fn queues(ctx: &Context) -> Result<Response<Body>, ApiError> {
    let stats = every_shard(&ctx.hub).await?;
    let body = views::queues(ctx.hub.registry(), &stats);
    Ok(json_response(StatusCode::OK, &body))
}

async fn message(ctx: &Context, id: &str) -> Result<Response<Body>, ApiError> {
    let id: MessageId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a message id (a UUID)")))?;
    let Some(operator) = &ctx.operator else {
        return Err(ApiError::unavailable(
            "the registry names no participant with the operator role",
        ));
    };
    match operator.status(id).await {
        Ok(view) => Ok(json_response(StatusCode::OK, &views::message(&view))),
        Err(HubError::NotFound) => Err(ApiError::not_found(format!("no message {id}"))),
        Err(e) => Err(ApiError::unavailable(e.to_string())),
    }
}

async fn info(ctx: &Context) -> Result<Response<Body>, ApiError> {
    let stats = every_shard(&ctx.hub).await?;
    Ok(json_response(
        StatusCode::OK,
        &views::info(&ctx.info, &stats),
    ))
}

async fn metrics_text(ctx: &Context) -> Result<Response<Body>, ApiError> {
    let stats = every_shard(&ctx.hub).await?;
    let text = metrics::render(&stats, rss::resident_bytes());
    Ok(with_type(StatusCode::OK, text, metrics::CONTENT_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_route_when_matched_then_its_handler_is_chosen() {
        assert_eq!(route("/health"), Some(Route::Health));
        assert_eq!(route("/messages/abc"), Some(Route::Message("abc")));
        assert_eq!(route("/messages/"), None);
        assert_eq!(route("/messages/a/b"), None);
        assert_eq!(route("/nothing"), None);
    }

    #[test]
    fn given_every_listed_route_when_matched_then_it_is_served() {
        for path in ROUTES {
            let concrete = path.replace("{id}", "x");
            assert!(
                route(&concrete).is_some(),
                "{path} is listed but not served"
            );
        }
    }
}
