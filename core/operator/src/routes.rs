//! Path to handler: the API's routes, every one GET only. [`ROUTES`] is
//! the list of served paths, which docs/operator-api.yaml must match (a
//! test in `tests/` checks both ways).

use crate::console;
use crate::events::EventFeed;
use crate::gather::every_shard;
use crate::metrics;
use crate::monitor::{unix_now_ms, MonitorSettings};
use crate::reply::{json_response, with_type, ApiError, Body};
use crate::settings::HubInfo;
use crate::sla_report::{self, PERIOD_MS_DEFAULT};
use crate::sla_store::SlaStore;
use crate::timefmt::parse_time_ms;
use crate::{providers, rss, sse, views};
use gonets_engine::{HubHandle, Session};
use gonets_types::{HubError, MessageId};
use hyper::{Method, Response, StatusCode};
use serde_json::json;
use std::sync::Mutex;

/// Every path the API serves, in the OpenAPI file's spelling.
pub const ROUTES: [&str; 11] = [
    "/health",
    "/ready",
    "/queues",
    "/messages/{id}",
    "/info",
    "/metrics",
    "/console",
    "/providers",
    "/events",
    "/sla",
    "/anchors",
];

/// What the handlers share: the hub, its facts, and a session as the
/// registry's operator (for message histories).
pub(crate) struct Context {
    pub(crate) hub: HubHandle,
    pub(crate) info: HubInfo,
    pub(crate) operator: Option<Session>,
    /// How the monitor runs.
    pub(crate) monitor: MonitorSettings,
    /// The operator events, for `/events`.
    pub(crate) events: EventFeed,
    /// The SLA buckets (the monitor adds, `/sla` reads; operator thread only).
    pub(crate) sla: Mutex<SlaStore>,
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
    Providers,
    Events,
    Sla,
    Anchors,
}

fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/health" => Some(Route::Health),
        "/ready" => Some(Route::Ready),
        "/queues" => Some(Route::Queues),
        "/info" => Some(Route::Info),
        "/metrics" => Some(Route::Metrics),
        "/console" => Some(Route::Console),
        "/providers" => Some(Route::Providers),
        "/events" => Some(Route::Events),
        "/sla" => Some(Route::Sla),
        "/anchors" => Some(Route::Anchors),
        _ => path
            .strip_prefix("/messages/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(Route::Message),
    }
}

/// Answers one request; every failure is a JSON error with its status.
pub(crate) async fn handle(
    ctx: &Context,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<Body> {
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
        Route::Providers => provider_rows(ctx).await,
        Route::Events => Ok(sse::stream(&ctx.events)),
        Route::Sla => sla(ctx, query.unwrap_or("")),
        Route::Anchors => anchors(ctx, query.unwrap_or("")),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// The chain anchors signed since the hub started, at or after
/// `since_ms` (default 0), one JSON line each: what an auditor keeps away
/// from the hub's disk and gives `gonets verify --anchors`.
fn anchors(ctx: &Context, query: &str) -> Result<Response<Body>, ApiError> {
    let mut since_ms = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("since_ms", v)) => {
                since_ms = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("since_ms={v:?}: expected Unix ms"))
                })?;
            }
            _ => return Err(ApiError::bad_request(format!("unknown parameter {pair:?}"))),
        }
    }
    let mut text = String::new();
    for a in ctx.hub.anchors(since_ms) {
        text.push_str(&a.to_json_line());
        text.push('\n');
    }
    Ok(with_type(StatusCode::OK, text, ANCHORS_CONTENT_TYPE))
}

/// JSON lines.
const ANCHORS_CONTENT_TYPE: &str = "application/jsonl";

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
    let rows = providers::rows(
        ctx.hub.registry(),
        &stats,
        ctx.monitor.deadline_risk_percent,
    );
    let hub = metrics::HubWide {
        resident_bytes: rss::resident_bytes(),
        attachment_write_paced_seconds: ctx.hub.attachment_write_paced_seconds(),
    };
    let text = metrics::render(&stats, &rows, &hub);
    Ok(with_type(StatusCode::OK, text, metrics::CONTENT_TYPE))
}

async fn provider_rows(ctx: &Context) -> Result<Response<Body>, ApiError> {
    let stats = every_shard(&ctx.hub).await?;
    let rows = providers::rows(
        ctx.hub.registry(),
        &stats,
        ctx.monitor.deadline_risk_percent,
    );
    Ok(json_response(StatusCode::OK, &providers::json(&rows)))
}

/// `from` and `to` of a query (`from=..&to=..`, each Unix ms or RFC 3339
/// UTC); `to` defaults to now, `from` to a day before `to`.
pub(crate) fn period(query: &str, now_ms: u64) -> Result<(u64, u64), ApiError> {
    let (mut from, mut to) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.replace("%3A", ":").replace("%3a", ":");
        let ms = parse_time_ms(&value).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{key}={value:?}: expected Unix ms or UTC like 2026-12-02T13:00:00Z"
            ))
        })?;
        match key {
            "from" => from = Some(ms),
            "to" => to = Some(ms),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}"
                )))
            }
        }
    }
    let to = to.unwrap_or(now_ms);
    let from = from.unwrap_or(to.saturating_sub(PERIOD_MS_DEFAULT));
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    Ok((from, to))
}

fn sla(ctx: &Context, query: &str) -> Result<Response<Body>, ApiError> {
    let (from, to) = period(query, unix_now_ms())?;
    let sums = ctx
        .sla
        .lock()
        .expect("no panics while held")
        .sum(from, to)
        .map_err(ApiError::unavailable)?;
    Ok(json_response(
        StatusCode::OK,
        &sla_report::report_json(&sums, from, to),
    ))
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
    fn given_a_query_when_its_period_is_read_then_defaults_and_errors_follow_the_rules() {
        assert_eq!(period("", 100_000_000).unwrap(), (13_600_000, 100_000_000));
        assert_eq!(period("from=5&to=9", 0).unwrap(), (5, 9));
        let utc = period("from=2026-12-02T13%3A00%3A00Z&to=2026-12-02", 0);
        assert!(utc.is_err(), "from after to");
        assert!(period("from=x", 10).is_err());
        assert!(period("since=5", 10).is_err());
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
