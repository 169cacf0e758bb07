//! The console page (`/console`, docs/operations.md "Console") in headless
//! Chromium (Debian package `chromium`, installed by `.ci/run`), black box:
//! a hub with the operator API and a little traffic; Chromium loads the
//! page, lets its script poll the API for a few seconds of virtual time
//! and dumps the DOM, in which the figures must show what the hub holds.
//! Without Chromium the test says so and passes, except under `GONETS_CI`.
//!
//! Needs the `gonets` binary (`cargo build --release -p gonets --bin gonets`).

use gonets_tests::net::{run_local, wait_output, ServerOptions, ServerProcess};
use gonets_types::NewRequest;
use std::process::{Command, Stdio};
use std::time::Duration;

const EGRUL: &str = "urn:gonets:fns:egrul-extract:1";
/// Requests sent before the page is loaded.
const REQUESTS: usize = 3;
/// Virtual time the page's script runs for, ms, polling every `POLL_MS`.
const VIRTUAL_TIME_MS: u64 = 6_000;
const POLL_MS: u64 = 500;
/// Bound of the whole Chromium run (start-up on a loaded 2-core VM included).
const CHROMIUM_WAIT: Duration = Duration::from_secs(120);

/// The Chromium binary, if one is installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|bin| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The DOM of `url` after its script ran for [`VIRTUAL_TIME_MS`].
fn dump_dom(chromium: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox", // CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"))
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chromium");
    let out = wait_output(child, CHROMIUM_WAIT, "chromium --headless --dump-dom");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed ({:?}):\n{}\n{dom}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The opening tag of the element with `id` in `dom`.
fn tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element {id} in:\n{dom}"));
    let start = dom[..at].rfind('<').expect("a tag start");
    let end = at + dom[at..].find('>').expect("a tag end");
    &dom[start..=end]
}

/// The value of `attr` in the opening tag of the element with `id`.
fn attr(dom: &str, id: &str, attr: &str) -> String {
    let tag = tag(dom, id);
    let key = format!("{attr}=\"");
    let at = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} in {tag}"))
        + key.len();
    tag[at..at + tag[at..].find('"').expect("a closing quote")].to_string()
}

/// The text between the opening tag of `id` and its `closing` tag.
fn inner<'a>(dom: &'a str, id: &str, closing: &str) -> &'a str {
    let open = tag(dom, id);
    let at = dom.find(open).expect("the tag") + open.len();
    &dom[at..at + dom[at..].find(closing).expect("a closing tag")]
}

fn samples(dom: &str, id: &str) -> u64 {
    attr(dom, id, "data-samples").parse().expect("a number")
}

#[test]
fn given_a_hub_with_traffic_when_the_console_runs_in_chromium_then_its_figures_show_the_hub() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("GONETS_CI").is_none(),
            "GONETS_CI is set but chromium is missing: .ci/run installs it (package chromium)"
        );
        gonets_tests::print_uncaptured(
            "skipped: chromium is not installed (Debian package chromium); the console was not loaded",
        );
        return;
    };
    let server = ServerProcess::start(ServerOptions {
        operator: true,
        ..ServerOptions::dev_token()
    });
    let ep = server.endpoint();
    run_local(move || async move {
        let mfc = ep.connect("MFC").await;
        for i in 0..REQUESTS {
            let request = NewRequest::new(EGRUL, format!("request {i}"));
            mfc.send_request(request).await.expect("send_request");
        }
    });
    let url = format!(
        "http://{}/console?interval_ms={POLL_MS}",
        server.operator_addr()
    );
    let dom = dump_dom(chromium, &url);

    assert_eq!(attr(&dom, "ready", "data-state"), "ready", "{dom}");
    let info = inner(&dom, "info", "</span>");
    assert!(info.contains("2 shards"), "{info}");
    // Throughput and queue depths are plotted from two reads on.
    for fig in ["fig-throughput", "fig-queues"] {
        assert_eq!(attr(&dom, fig, "data-state"), "ok", "{}", tag(&dom, fig));
        assert!(samples(&dom, fig) >= 2, "{}", tag(&dom, fig));
    }
    let queue_plot = inner(&dom, "plot-queues", "</svg>");
    assert!(
        queue_plot.contains(&format!("data-series=\"requests/{EGRUL}\"")),
        "{queue_plot}"
    );
    let queue_rows = inner(&dom, "table-queues", "</table>");
    let egrul_row = queue_rows
        .split("<tr")
        .find(|row| row.contains(&format!("requests/{EGRUL}")))
        .unwrap_or_else(|| panic!("no EGRUL row in {queue_rows}"));
    assert!(
        egrul_row.contains(&format!("<td class=\"n\">{REQUESTS}</td>")),
        "{egrul_row}"
    );
    let legend = inner(&dom, "legend-throughput", "</div>");
    assert!(legend.contains("requests accepted"), "{legend}");
    // Latency needs a histogram the hub may not export yet; providers
    // need /providers, which the hub may not serve: either way each figure
    // says what it found instead of waiting.
    let latency = attr(&dom, "fig-latency", "data-state");
    assert!(["ok", "no-data"].contains(&latency.as_str()), "{latency}");
    let providers = attr(&dom, "fig-providers", "data-state");
    assert!(
        ["ok", "absent"].contains(&providers.as_str()),
        "{providers}"
    );
}
