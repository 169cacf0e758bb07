//! `/console`: one HTML page with its script inline (console.html,
//! embedded at build time: no build step, no file to install), which
//! polls this API and plots real-time latency percentiles, throughput,
//! queue depths and provider states. Its Content-Security-Policy lets it
//! load nothing from anywhere else: it works on a loopback-only network.

use crate::reply::{with_type, Body};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY};
use hyper::{Response, StatusCode};

/// The page.
const PAGE: &str = include_str!("console.html");
/// Inline script and style only; requests only to this origin.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
                      style-src 'unsafe-inline'; connect-src 'self'; img-src data:";

/// The console page's response.
pub(crate) fn page() -> Response<Body> {
    let mut response = with_type(StatusCode::OK, PAGE.to_string(), "text/html; charset=utf-8");
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_page_when_served_then_html_with_a_policy_that_loads_nothing_from_elsewhere() {
        let r = page();
        assert_eq!(r.status(), StatusCode::OK);
        let policy = r.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'"), "{policy}");
        assert!(policy.contains("connect-src 'self'"), "{policy}");
    }

    #[test]
    fn given_the_page_when_read_then_it_names_no_other_origin_and_has_every_figure() {
        assert!(
            !PAGE.contains("http://") && !PAGE.contains("https://"),
            "an external URL"
        );
        assert!(!PAGE.contains("<script src"), "an external script");
        for id in [
            "fig-latency",
            "fig-throughput",
            "fig-queues",
            "fig-providers",
        ] {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "{id} missing");
        }
        for path in ["/metrics", "/queues", "/info", "/ready", "/providers"] {
            assert!(PAGE.contains(&format!("\"{path}\"")), "{path} not read");
        }
    }
}
